"""A character-level GPT trained the way Karpathy's nanoGPT train.py does it, in plain PyTorch
(no Transformers): nanoGPT's globals-as-config with configurator.py overrides, its loop, its
learning-rate schedule and its prints

    step 0: train loss 3.4012, val loss 3.4009             every eval_interval iterations
    iter 10: loss 2.9871, time 31.24ms, mfu 0.01%           every log_interval iterations

on a synthetic text made here (seeded sentences from a small grammar) instead of Shakespeare.
What differs from nanoGPT: one process (no DDP), the dataset is made in memory, no wandb.
At the end it writes the values it printed, at full precision, to $EXPBOOK_CORPUS_TRUTH.

    python train.py config/train_synthetic_char.py --device=cpu --compile=False
"""

import json
import math
import os
import random
import time
from contextlib import nullcontext

import torch

from model import GPT, GPTConfig

# -----------------------------------------------------------------------------
# default config values
# I/O
out_dir = 'out'
eval_interval = 2000
log_interval = 1
eval_iters = 200
eval_only = False # if True, script exits right after the first eval
always_save_checkpoint = True # if True, always save a checkpoint after each eval
init_from = 'scratch'
# data
dataset = 'synthetic_char'
gradient_accumulation_steps = 5 * 8 # used to simulate larger batch sizes
batch_size = 12 # if gradient_accumulation_steps > 1, this is the micro-batch size
block_size = 1024
# model
n_layer = 12
n_head = 12
n_embd = 768
dropout = 0.0 # for pretraining 0 is good, for finetuning try 0.1+
bias = False # do we use bias inside LayerNorm and Linear layers?
# adamw optimizer
learning_rate = 6e-4 # max learning rate
max_iters = 600000 # total number of training iterations
weight_decay = 1e-1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0 # clip gradients at this value, or disable if == 0.0
# learning rate decay settings
decay_lr = True # whether to decay the learning rate
warmup_iters = 2000 # how many steps to warm up for
lr_decay_iters = 600000 # should be ~= max_iters per Chinchilla
min_lr = 6e-5 # minimum learning rate, should be ~= learning_rate/10 per Chinchilla
# system
device = 'cuda' # examples: 'cpu', 'cuda', 'cuda:0', 'cuda:1' etc., or try 'mps' on macbooks
dtype = 'bfloat16' if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else 'float16'
compile = True # use PyTorch 2.0 to compile the model to be faster
seed = 1337
# -----------------------------------------------------------------------------
config_keys = [k for k, v in globals().items() if not k.startswith('_') and isinstance(v, (int, float, bool, str))]
exec(open('configurator.py').read()) # overrides from command line or config file
config = {k: globals()[k] for k in config_keys} # will be useful for logging
# -----------------------------------------------------------------------------

master_process = True
seed_offset = 0
tokens_per_iter = gradient_accumulation_steps * batch_size * block_size
print(f"tokens per iteration will be: {tokens_per_iter:,}")

os.makedirs(out_dir, exist_ok=True)
torch.manual_seed(seed + seed_offset)
device_type = 'cuda' if 'cuda' in device else 'cpu'
ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[dtype]
ctx = nullcontext() if device_type == 'cpu' else torch.amp.autocast(device_type=device_type, dtype=ptdtype)

# the data: a synthetic text, encoded character by character, 90% train / 10% val
def synthetic_text(n_chars, rng):
    subjects = ['the cat', 'a dog', 'my old friend', 'the king', 'a small bird', 'the river',
                'our teacher', 'the wind', 'a stranger', 'the queen']
    verbs = ['sees', 'follows', 'remembers', 'finds', 'carries', 'watches', 'forgets', 'greets']
    objects = ['the moon', 'a red apple', 'the long road', 'a quiet house', 'the sea',
               'an empty cup', 'the garden', 'a letter']
    endings = ['.', '.', '.', '!', '?']
    lines, size = [], 0
    while size < n_chars:
        words = [rng.choice(subjects), rng.choice(verbs), rng.choice(objects)]
        if rng.random() < 0.3:
            words += ['and', rng.choice(verbs), rng.choice(objects)]
        sentence = ' '.join(words)
        sentence = sentence[0].upper() + sentence[1:] + rng.choice(endings)
        if rng.random() < 0.2:
            sentence += '\n'
        lines.append(sentence)
        size += len(sentence) + 1
    return ' '.join(lines)[:n_chars]

text = synthetic_text(200_000, random.Random(seed))
chars = sorted(set(text))
stoi = {ch: i for i, ch in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
n = int(0.9 * len(data))
train_data, val_data = data[:n], data[n:]
meta_vocab_size = len(chars)
print(f"found vocab_size = {meta_vocab_size} (inside the synthetic text of {len(text):,} characters)")

def get_batch(split):
    data = train_data if split == 'train' else val_data
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([data[i:i+block_size] for i in ix])
    y = torch.stack([data[i+1:i+1+block_size] for i in ix])
    return x.to(device), y.to(device)

# init these up here, can override if init_from='resume' (i.e. from a checkpoint)
iter_num = 0
best_val_loss = 1e9

model_args = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                  bias=bias, vocab_size=meta_vocab_size, dropout=dropout)
print("Initializing a new model from scratch")
gptconf = GPTConfig(**model_args)
model = GPT(gptconf)
model.to(device)

optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type)

if compile:
    print("compiling the model... (takes a ~minute)")
    model = torch.compile(model)
raw_model = model

# helps estimate an arbitrarily accurate loss over either split using many batches
@torch.no_grad()
def estimate_loss():
    out = {}
    model.eval()
    for split in ['train', 'val']:
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            X, Y = get_batch(split)
            with ctx:
                logits, loss = model(X, Y)
            losses[k] = loss.item()
        out[split] = losses.mean()
    model.train()
    return out

# learning rate decay scheduler (cosine with warmup)
def get_lr(it):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) # coeff ranges 0..1
    return min_lr + coeff * (learning_rate - min_lr)

records = [] # (key, iter_num, value): what the prints below formatted, for the corpus truth

# training loop
X, Y = get_batch('train') # fetch the very first batch
t0 = time.time()
local_iter_num = 0 # number of iterations in the lifetime of this process
running_mfu = -1.0
while True:

    # determine and set the learning rate for this iteration
    lr = get_lr(iter_num) if decay_lr else learning_rate
    for param_group in optimizer.param_groups:
        param_group['lr'] = lr

    # evaluate the loss on train/val sets and write checkpoints
    if iter_num % eval_interval == 0 and master_process:
        losses = estimate_loss()
        print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        records.append(('train_loss', iter_num, losses['train'].item()))
        records.append(('val_loss', iter_num, losses['val'].item()))
        if losses['val'] < best_val_loss or always_save_checkpoint:
            best_val_loss = losses['val']
            if iter_num > 0:
                checkpoint = {
                    'model': raw_model.state_dict(),
                    'optimizer': optimizer.state_dict(),
                    'model_args': model_args,
                    'iter_num': iter_num,
                    'best_val_loss': best_val_loss,
                    'config': config,
                }
                print(f"saving checkpoint to {out_dir}")
                torch.save(checkpoint, os.path.join(out_dir, 'ckpt.pt'))
    if iter_num == 0 and eval_only:
        break

    # forward backward update, with optional gradient accumulation to simulate larger batch size
    for micro_step in range(gradient_accumulation_steps):
        with ctx:
            logits, loss = model(X, Y)
            loss = loss / gradient_accumulation_steps # scale the loss to account for gradient accumulation
        # immediately async prefetch next batch while model is doing the forward pass on the GPU
        X, Y = get_batch('train')
        loss.backward()
    # clip the gradient
    if grad_clip != 0.0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    # flush the gradients as soon as we can, no need for this memory anymore
    optimizer.zero_grad(set_to_none=True)

    # timing and logging
    t1 = time.time()
    dt = t1 - t0
    t0 = t1
    if iter_num % log_interval == 0 and master_process:
        # get loss as float. note: this is a CPU-GPU sync point
        # scale up to undo the division above, approximating the true total loss (exact would have been a sum)
        lossf = loss.item() * gradient_accumulation_steps
        if local_iter_num >= 5: # let the training loop settle a bit
            mfu = raw_model.estimate_mfu(batch_size * gradient_accumulation_steps, dt)
            running_mfu = mfu if running_mfu == -1.0 else 0.9*running_mfu + 0.1*mfu
        print(f"iter {iter_num}: loss {lossf:.4f}, time {dt*1000:.2f}ms, mfu {running_mfu*100:.2f}%")
        records.append(('loss', iter_num, lossf))
        records.append(('time', iter_num, dt * 1000))
        records.append(('mfu', iter_num, running_mfu * 100))
    iter_num += 1
    local_iter_num += 1

    # termination conditions
    if iter_num > max_iters:
        break

# the corpus truth: the values printed above, at full precision
if os.environ.get('EXPBOOK_CORPUS_TRUTH'):
    notes = (
        "nanoGPT train.py prints. 'step N: train loss X, val loss Y' every eval_interval "
        f"({eval_interval}) iterations, N = iter_num: keys train_loss, val_loss (means over "
        f"eval_iters={eval_iters} batches). 'iter N: loss X, time T ms, mfu M%' every "
        f"log_interval ({log_interval}) iterations: loss = the last micro-batch's loss times "
        "gradient_accumulation_steps, time = the iteration's wall time in milliseconds, mfu = "
        "the running (EMA) model-flops utilisation in percent of an A100's 312 TFLOPS, as "
        "printed with 2 decimals (on a CPU, against an A100's peak, 0.01-0.02: its points say "
        "\\"digits\\": 2, so the scorer compares to what 2 decimals can say); nanoGPT prints its sentinel -100.00% until 5 iterations have passed (here "
        "at iter 0), recorded as printed. step = iter_num, the same counter in both lines; "
        "no epochs. The loop runs iterations 0..max_iters inclusive. time and mfu differ "
        "between runs; the rest is seeded."
    )
    points = [{"key": k, "step": s, "epoch": None, "value": v, "printed": True,
               **({"digits": 2} if k == "mfu" else {})}
              for k, s, v in records]
    with open(os.environ['EXPBOOK_CORPUS_TRUTH'], 'w') as f:
        json.dump({"framework": "torch", "versions": {"torch": torch.__version__},
                   "points": points, "notes": notes}, f, indent=1)
