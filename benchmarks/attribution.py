"""Integrated Gradients speed, side by side in one run.

    KERAS_BACKEND=tensorflow python benchmarks/attribution.py

On 64 MNIST test digits (mnist5k) and the ATEX small CNN, at 50 steps:
keras_interp's IG against tf-explain's (TensorFlow backend only), and
against 50 compiled gradient calls on the 64 digits, the floor any
50-step IG must pay. Each figure is the best of `--repeats` runs after a
warm-up run.
"""

import argparse
import time

import keras
import numpy as np

import keras_interp as ki


def best_time(fn, repeats):
    fn()  # warm-up: tracing, allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    _, (x_test, _) = ki.data.load("mnist5k")
    x = x_test[: args.images]
    model = ki.models.small_cnn()
    predicted = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    n, steps = len(x), args.steps
    to_np = keras.ops.convert_to_numpy

    def ours(batch_size):
        return lambda: to_np(
            ki.attribution.integrated_gradients(
                model, x, predicted, steps=steps, batch_size=batch_size
            )
        )

    def pick(z):
        return keras.ops.take_along_axis(
            model(z), keras.ops.convert_to_tensor(predicted[:, None]), axis=1
        )

    # The floor: the same compiled gradient call IG makes, on all 64 images.
    gradient = ki.backend.compiled(ki.backend.grad(pick), model.variables)

    def gradient_calls():
        for _ in range(steps):
            to_np(gradient(x))

    t = {
        "ours, batch_size=64": best_time(ours(64), args.repeats),
        "ours, batch_size=256": best_time(ours(256), args.repeats),
        f"ours, batch_size={n * steps}": best_time(ours(n * steps), args.repeats),
        f"{steps} x one compiled gradient call on {n} images": best_time(
            gradient_calls, args.repeats
        ),
    }

    if keras.config.backend() == "tensorflow":
        from tf_explain.core.integrated_gradients import IntegratedGradients

        explainer = IntegratedGradients()

        def tf_explain_per_image():
            # tf-explain explains one class per call: an image at a time.
            for img, c in zip(x, predicted):
                explainer.explain((img[None], None), model, int(c), n_steps=steps)

        def tf_explain_raw_per_image():
            for img, c in zip(x, predicted):
                path = IntegratedGradients.generate_interpolations(img[None], steps)
                IntegratedGradients.get_integrated_gradients(
                    path, model, int(c), steps
                ).numpy()

        t["tf-explain explain(), per image"] = best_time(
            tf_explain_per_image, args.repeats
        )
        t["tf-explain raw gradients, per image"] = best_time(
            tf_explain_raw_per_image, args.repeats
        )

    print(f"backend: {keras.config.backend()}; {n} images, {steps} steps")
    for name, seconds in t.items():
        print(f"  {name}: {seconds:.3f} s")
    base = t["ours, batch_size=64"]
    print("ratios:")
    for name, seconds in t.items():
        if name.startswith("tf-explain"):
            print(f"  {name} / ours (bs 64): {seconds / base:.1f}x")
    floor = t[f"{steps} x one compiled gradient call on {n} images"]
    for bs in (64, 256, n * steps):
        ratio = t[f"ours, batch_size={bs}"] / floor
        print(f"  ours (bs {bs}) / {steps} gradient calls: {ratio:.2f}")


if __name__ == "__main__":
    main()
