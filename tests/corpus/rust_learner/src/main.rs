//! A small classifier trained the way a burn `Learner` would train it, written with the standard
//! library only: a 2-layer MLP (ReLU, softmax cross-entropy) on synthetic data, mini-batch SGD,
//! a train and a valid split per epoch, and burn's "Learner Summary" table at the end.
//!
//! Per epoch it prints `[Train - Epoch N] Loss x | Accuracy y %` and the same for `Valid`, the
//! epoch means of its metrics (accuracy in percent, as burn's `AccuracyMetric` reports it).
//! The truth (those very values, at full precision) goes to `$EXPBOOK_CORPUS_TRUTH`.

use std::cmp::Ordering;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::time::Instant;

const INPUT: usize = 6;
const HIDDEN: usize = 16;
const CLASSES: usize = 3;

/// xorshift64* with Box-Muller normals.
struct Rng {
    state: u64,
    spare: Option<f64>,
}

impl Rng {
    fn new(seed: u64) -> Self {
        Rng { state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, spare: None }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

struct Sample {
    x: [f64; INPUT],
    y: usize,
}

/// Three overlapping classes: a Gaussian blob per class around a random centre, plus a
/// non-linear twist in the first two features.
fn make_dataset(rng: &mut Rng, n: usize, centres: &[[f64; INPUT]; CLASSES]) -> Vec<Sample> {
    (0..n)
        .map(|_| {
            let y = rng.below(CLASSES);
            let mut x = [0.0; INPUT];
            for (d, value) in x.iter_mut().enumerate() {
                *value = centres[y][d] + 1.1 * rng.normal();
            }
            x[1] += 0.4 * x[0] * x[0] - 0.5;
            Sample { x, y }
        })
        .collect()
}

struct Mlp {
    w1: Vec<f64>, // HIDDEN x INPUT
    b1: Vec<f64>,
    w2: Vec<f64>, // CLASSES x HIDDEN
    b2: Vec<f64>,
}

struct Grads {
    w1: Vec<f64>,
    b1: Vec<f64>,
    w2: Vec<f64>,
    b2: Vec<f64>,
}

impl Mlp {
    fn new(rng: &mut Rng) -> Self {
        let s1 = (2.0 / INPUT as f64).sqrt();
        let s2 = (2.0 / HIDDEN as f64).sqrt();
        Mlp {
            w1: (0..HIDDEN * INPUT).map(|_| s1 * rng.normal()).collect(),
            b1: vec![0.0; HIDDEN],
            w2: (0..CLASSES * HIDDEN).map(|_| s2 * rng.normal()).collect(),
            b2: vec![0.0; CLASSES],
        }
    }

    fn num_params(&self) -> usize {
        self.w1.len() + self.b1.len() + self.w2.len() + self.b2.len()
    }

    /// Forward one sample: hidden activations and class probabilities.
    fn forward(&self, x: &[f64; INPUT]) -> ([f64; HIDDEN], [f64; CLASSES]) {
        let mut h = [0.0; HIDDEN];
        for j in 0..HIDDEN {
            let mut z = self.b1[j];
            for d in 0..INPUT {
                z += self.w1[j * INPUT + d] * x[d];
            }
            h[j] = z.max(0.0);
        }
        let mut logits = [0.0; CLASSES];
        for k in 0..CLASSES {
            let mut z = self.b2[k];
            for j in 0..HIDDEN {
                z += self.w2[k * HIDDEN + j] * h[j];
            }
            logits[k] = z;
        }
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for l in logits.iter_mut() {
            *l = (*l - max).exp();
            sum += *l;
        }
        for l in logits.iter_mut() {
            *l /= sum;
        }
        (h, logits)
    }

    /// Mean loss, number correct, and (when `grads` is given) accumulated gradients of a batch.
    fn batch(&self, batch: &[&Sample], mut grads: Option<&mut Grads>) -> (f64, usize) {
        let mut loss = 0.0;
        let mut correct = 0;
        let scale = 1.0 / batch.len() as f64;
        for s in batch {
            let (h, p) = self.forward(&s.x);
            loss += -(p[s.y].max(1e-12)).ln();
            let pred = argmax(&p);
            if pred == s.y {
                correct += 1;
            }
            if let Some(g) = grads.as_deref_mut() {
                let mut dlogit = p;
                dlogit[s.y] -= 1.0;
                let mut dh = [0.0; HIDDEN];
                for k in 0..CLASSES {
                    let dk = dlogit[k] * scale;
                    g.b2[k] += dk;
                    for j in 0..HIDDEN {
                        g.w2[k * HIDDEN + j] += dk * h[j];
                        dh[j] += dk * self.w2[k * HIDDEN + j];
                    }
                }
                for j in 0..HIDDEN {
                    if h[j] <= 0.0 {
                        continue;
                    }
                    g.b1[j] += dh[j];
                    for d in 0..INPUT {
                        g.w1[j * INPUT + d] += dh[j] * s.x[d];
                    }
                }
            }
        }
        (loss * scale, correct)
    }

    fn step(&mut self, g: &Grads, lr: f64, momentum_buf: &mut Grads, momentum: f64) {
        fn update(p: &mut [f64], g: &[f64], m: &mut [f64], lr: f64, mu: f64) {
            for i in 0..p.len() {
                m[i] = mu * m[i] + g[i];
                p[i] -= lr * m[i];
            }
        }
        update(&mut self.w1, &g.w1, &mut momentum_buf.w1, lr, momentum);
        update(&mut self.b1, &g.b1, &mut momentum_buf.b1, lr, momentum);
        update(&mut self.w2, &g.w2, &mut momentum_buf.w2, lr, momentum);
        update(&mut self.b2, &g.b2, &mut momentum_buf.b2, lr, momentum);
    }
}

impl Grads {
    fn zeros() -> Self {
        Grads {
            w1: vec![0.0; HIDDEN * INPUT],
            b1: vec![0.0; HIDDEN],
            w2: vec![0.0; CLASSES * HIDDEN],
            b2: vec![0.0; CLASSES],
        }
    }
}

fn argmax(p: &[f64; CLASSES]) -> usize {
    let mut best = 0;
    for k in 1..CLASSES {
        if p[k] > p[best] {
            best = k;
        }
    }
    best
}

/// The epoch's metrics of one split: means over items, as burn aggregates them.
struct EpochMetrics {
    loss: f64,
    accuracy: f64,
}

fn run_split(model: &mut Mlp, data: &mut Vec<Sample>, batch_size: usize, train: Option<(&mut Rng, f64, &mut Grads)>) -> EpochMetrics {
    let mut loss_sum = 0.0;
    let mut correct = 0usize;
    let mut items = 0usize;
    match train {
        Some((rng, lr, momentum_buf)) => {
            // Fisher-Yates shuffle each epoch.
            for i in (1..data.len()).rev() {
                let j = rng.below(i + 1);
                data.swap(i, j);
            }
            for chunk in data.chunks(batch_size) {
                let batch: Vec<&Sample> = chunk.iter().collect();
                let mut grads = Grads::zeros();
                let (loss, c) = model.batch(&batch, Some(&mut grads));
                model.step(&grads, lr, momentum_buf, 0.9);
                loss_sum += loss * batch.len() as f64;
                correct += c;
                items += batch.len();
            }
        }
        None => {
            for chunk in data.chunks(batch_size) {
                let batch: Vec<&Sample> = chunk.iter().collect();
                let (loss, c) = model.batch(&batch, None);
                loss_sum += loss * batch.len() as f64;
                correct += c;
                items += batch.len();
            }
        }
    }
    EpochMetrics { loss: loss_sum / items as f64, accuracy: 100.0 * correct as f64 / items as f64 }
}

struct Args {
    epochs: usize,
    learning_rate: f64,
    batch_size: usize,
    seed: u64,
}

fn parse_args() -> Args {
    let mut args = Args { epochs: 10, learning_rate: 0.01, batch_size: 32, seed: 42 };
    let argv: Vec<String> = env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--epochs" => args.epochs = value.parse().expect("--epochs takes an integer"),
            "--learning-rate" => args.learning_rate = value.parse().expect("--learning-rate takes a float"),
            "--batch-size" => args.batch_size = value.parse().expect("--batch-size takes an integer"),
            "--seed" => args.seed = value.parse().expect("--seed takes an integer"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    args
}

/// burn's `LearnerSummary` display: min and max of each metric's epoch values, with their epochs.
fn learner_summary(epochs: usize, train: &[(&str, Vec<f64>)], valid: &[(&str, Vec<f64>)]) -> String {
    let mut out = String::new();
    let split_len = "Split".len().max("Train".len()).max("Valid".len());
    let metric_len = train.iter().chain(valid.iter()).map(|(n, _)| n.len()).fold("Metric".len(), usize::max);
    writeln!(out, "{:=>24} Learner Summary {:=>24}", "", "").unwrap();
    writeln!(out, "Total Epochs: {epochs}\n\n").unwrap();
    writeln!(
        out,
        "| {:<ws$} | {:<wm$} | Min.     | Epoch    | Max.     | Epoch    |\n|{:->ws$}--|{:->wm$}--|----------|----------|----------|----------|",
        "Split", "Metric", "", "", ws = split_len, wm = metric_len
    )
    .unwrap();
    fn fmt_val(val: f64) -> String {
        if val < 1e-2 { format!("{val:<9.3e}") } else { format!("{val:<9.3}") }
    }
    let cmp = |a: &(usize, f64), b: &(usize, f64)| a.1.partial_cmp(&b.1).unwrap_or(Ordering::Equal);
    for (split, metrics) in [("Train", train), ("Valid", valid)] {
        for (name, values) in metrics {
            let entries: Vec<(usize, f64)> = values.iter().enumerate().map(|(i, v)| (i + 1, *v)).collect();
            let min = entries.iter().min_by(|a, b| cmp(a, b)).unwrap();
            let max = entries.iter().max_by(|a, b| cmp(a, b)).unwrap();
            writeln!(
                out,
                "| {:<ws$} | {:<wm$} | {}| {:<9?}| {}| {:<9?}|",
                split, name, fmt_val(min.1), min.0, fmt_val(max.1), max.0, ws = split_len, wm = metric_len
            )
            .unwrap();
        }
    }
    out
}

fn main() {
    let args = parse_args();
    let mut rng = Rng::new(args.seed);
    let mut centres = [[0.0; INPUT]; CLASSES];
    for c in centres.iter_mut() {
        for v in c.iter_mut() {
            *v = 0.9 * rng.normal();
        }
    }
    let mut train = make_dataset(&mut rng, 960, &centres);
    let mut valid = make_dataset(&mut rng, 240, &centres);
    let mut model = Mlp::new(&mut rng);
    let mut momentum = Grads::zeros();

    println!(
        "Config: epochs={} learning_rate={} batch_size={} seed={} | Model: Mlp {{ linear1: {}x{}, activation: Relu, linear2: {}x{} }} | params={}",
        args.epochs, args.learning_rate, args.batch_size, args.seed, INPUT, HIDDEN, HIDDEN, CLASSES, model.num_params()
    );
    println!("Dataset: train={} items, valid={} items, classes={}", train.len(), valid.len(), CLASSES);

    let started = Instant::now();
    let mut history: Vec<(EpochMetrics, EpochMetrics)> = Vec::new();
    for epoch in 1..=args.epochs {
        let t = run_split(&mut model, &mut train, args.batch_size, Some((&mut rng, args.learning_rate, &mut momentum)));
        println!("[Train - Epoch {epoch}] Loss {:.3} | Accuracy {:.2} %", t.loss, t.accuracy);
        let v = run_split(&mut model, &mut valid, args.batch_size, None);
        println!("[Valid - Epoch {epoch}] Loss {:.3} | Accuracy {:.2} %", v.loss, v.accuracy);
        history.push((t, v));
    }
    let elapsed = started.elapsed().as_secs_f64();

    let series = |f: &dyn Fn(&(EpochMetrics, EpochMetrics)) -> f64| history.iter().map(f).collect::<Vec<f64>>();
    let train_metrics = [("Accuracy", series(&|h| h.0.accuracy)), ("Loss", series(&|h| h.0.loss))];
    let valid_metrics = [("Accuracy", series(&|h| h.1.accuracy)), ("Loss", series(&|h| h.1.loss))];
    print!("{}", learner_summary(args.epochs, &train_metrics, &valid_metrics));
    println!("Training completed in {elapsed:.2}s");

    if let Ok(path) = env::var("EXPBOOK_CORPUS_TRUTH") {
        let mut points = Vec::new();
        for (i, (t, v)) in history.iter().enumerate() {
            let epoch = i + 1;
            for (key, value) in [("train_loss", t.loss), ("train_accuracy", t.accuracy), ("valid_loss", v.loss), ("valid_accuracy", v.accuracy)] {
                points.push(format!(
                    "{{\"key\": \"{key}\", \"step\": null, \"epoch\": {epoch}, \"value\": {value:?}, \"printed\": true}}"
                ));
            }
        }
        let truth = format!(
            "{{\"framework\": \"rust\", \"versions\": {{}}, \"points\": [{}], \"notes\": \"{}\"}}\n",
            points.join(", "),
            "The values the loop computed per epoch (epoch means over items; accuracy in percent, as burn's AccuracyMetric reports it), printed on the [Train - Epoch N] and [Valid - Epoch N] lines with 3 and 2 decimals. Keys are the split and burn's metric name (Train/Valid x Loss/Accuracy). The Learner Summary table's Min./Max. rows summarise these same series (its Epoch columns are epoch numbers) and are not separate points; Config/Dataset lines are settings, not metrics."
        );
        fs::write(path, truth).expect("cannot write the truth");
    }
}
