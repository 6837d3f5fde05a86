"""Keras 3 on the torch backend: a small MLP classifier trained with model.fit (the default
progress bar, verbose=1), 20 % held out for validation, then model.evaluate on a test set.

Synthetic data: two interleaved half-moons lifted to 16 features with noise.
The ground truth (Keras's own History and evaluate's return value) goes to
$EXPBOOK_CORPUS_TRUTH at the end.
"""

import json
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from keras import layers  # noqa: E402


def make_data(n, rng):
    t = rng.uniform(0, np.pi, size=n)
    label = rng.integers(0, 2, size=n)
    x = np.where(label == 0, np.cos(t), 1 - np.cos(t))
    y = np.where(label == 0, np.sin(t), 0.5 - np.sin(t))
    base = np.stack([x, y], axis=1) + rng.normal(0, 0.15, size=(n, 2))
    projection = rng.normal(size=(2, 16))
    features = base @ projection + rng.normal(0, 0.3, size=(n, 16))
    return features.astype("float32"), label.astype("float32")


def main():
    keras.utils.set_random_seed(1234)
    torch.set_num_threads(2)
    rng = np.random.default_rng(1234)
    x, y = make_data(1600, rng)
    x_train, y_train, x_test, y_test = x[:1280], y[:1280], x[1280:], y[1280:]

    model = keras.Sequential(
        [
            keras.Input(shape=(16,)),
            layers.Dense(32, activation="relu"),
            layers.Dropout(0.1),
            layers.Dense(16, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3),
                  loss="binary_crossentropy", metrics=["accuracy"])
    model.summary()

    history = model.fit(x_train, y_train, batch_size=32, epochs=4, validation_split=0.2, verbose=1)
    score = model.evaluate(x_test, y_test)
    print("Test loss:", score[0])
    print("Test accuracy:", score[1])
    test_loss, test_accuracy = score

    write_truth(history, test_loss, test_accuracy)


def write_truth(history, test_loss, test_accuracy):
    path = os.environ.get("EXPBOOK_CORPUS_TRUTH")
    if not path:
        return
    points = []
    for key, values in history.history.items():
        for index, value in enumerate(values):
            epoch = history.epoch[index] + 1  # Keras prints "Epoch 1/4" for History.epoch 0
            points.append({"key": key, "step": None, "epoch": epoch, "value": float(value),
                           "printed": True})
    for key, value in (("test_loss", test_loss), ("test_accuracy", test_accuracy)):
        points.append({"key": key, "step": None, "epoch": None, "value": float(value),
                       "printed": True})
    truth = {
        "framework": "keras",
        "versions": {"keras": keras.__version__, "torch": torch.__version__},
        "points": points,
        "notes": (
            "Truth is History.history: loss, accuracy, val_loss, val_accuracy per epoch, numbered "
            "as printed ('Epoch 1/4' is epoch 1), each printed once on the bar's final line of "
            "its epoch ('40/40 ━━━ 0s 2ms/step - accuracy: 0.8 - loss: 0.4 - val_accuracy: ... "
            "- val_loss: ...'). verbose=1 redraws the bar with \\b/\\r (Keras treats every POSIX "
            "process as a dynamic display, so also in a pipe); the running per-batch averages "
            "shown in the redraws are not History values and are not truth points. Then "
            "model.evaluate's bar prints the test loss and accuracy (as 'loss:' and 'accuracy:', "
            "no epoch) and the script prints them again as the Keras examples do ('Test loss: 0.259...', 'Test accuracy: 0.8875', full precision); "
            "they are truth as test_loss/test_accuracy with no step or epoch, so an evaluate "
            "bar stored as a fifth point of loss/accuracy is a wrong point, not a match."
        ),
    }
    with open(path, "w") as handle:
        json.dump(truth, handle, indent=1)


if __name__ == "__main__":
    main()
