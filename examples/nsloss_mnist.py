"""NsLoss fine-tuning of an MNIST classifier, next to standard training.

Trains the small CNN on the embedded MNIST digits, then continues training
copies of it for as many epochs two ways: with NsLoss (neuron sensitivity
regularisation, NsLoss paper §4) and without. Each model is scored on the
1,000 held-out test digits: clean accuracy, NsLoss (lower: neurons move
less under random input perturbations of radius epsilon) and accuracy
under an L-inf PGD attack. Runs on whichever backend KERAS_BACKEND selects:

    KERAS_BACKEND=jax python examples/nsloss_mnist.py
    KERAS_BACKEND=torch python examples/nsloss_mnist.py --weight 3 --epsilon 0.5
"""

import argparse

import keras
import numpy as np

import keras_interp as ki

parser = argparse.ArgumentParser(
    description=__doc__.splitlines()[0],
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
)
parser.add_argument("--epochs", type=int, default=2, help="standard training epochs")
parser.add_argument("--finetune-epochs", type=int, default=1, help="then, epochs of each")
parser.add_argument("--weight", type=float, default=10.0, help="lambda of NsLoss")
parser.add_argument("--epsilon", type=float, default=1.0, help="L2 radius of NsLoss")
parser.add_argument("--pgd-epsilon", type=float, default=0.1, help="L-inf radius of PGD")
parser.add_argument("--seed", type=int, default=0, help="seed of training")
args = parser.parse_args()

keras.utils.set_random_seed(args.seed)
(x_train, y_train), (x_test, y_test) = ki.data.load("mnist5k")
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


# RegularizedModel trains the weights of the model it wraps, so each
# continuation starts from its own copy of the standard model.
def copy(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def scores(name, model):
    # NsLoss is measured with weight 1 and a fixed seed, so every model is
    # scored on the same perturbed copies of the test digits.
    probe = ki.RegularizedModel(
        model,
        [ki.regularizers.NeuronSensitivity(1.0, args.epsilon)],
        seed=0,
        evaluate_regularizers=True,
    )
    probe.compile(loss=loss, metrics=["accuracy"])
    logs = probe.evaluate(x_test, y_test, batch_size=250, verbose=0, return_dict=True)
    # Neurons that barely move under small random perturbations should also
    # make the model harder to move with small adversarial ones.
    x_adv = ki.attacks.pgd(
        model, x_test, y_test, epsilon=args.pgd_epsilon, clip=(0, 1), seed=0
    )
    robust = np.mean(model.predict(x_adv, verbose=0).argmax(1) == y_test)
    print(
        f"{name:<22} accuracy {logs['accuracy']:.3f}   "
        f"NsLoss {logs['neuron_sensitivity']:.4f}   PGD accuracy {robust:.3f}"
    )


print("Standard training")
standard = ki.models.small_cnn()
standard.compile("adam", loss, metrics=["accuracy"])
standard.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=2)

print("Standard training, continued")
continued = copy(standard)
continued.compile("adam", loss, metrics=["accuracy"])
continued.fit(x_train, y_train, epochs=args.finetune_epochs, batch_size=64, verbose=2)

# The loss is CE + weight * NsLoss (paper Eq. 3). The default weight is about
# lambda_0 / 3 of the paper's protocol (`ki.select_lambda`, lambda_0 ~ 31
# here): enough to cut NsLoss in one epoch without costing accuracy.
print(f"NsLoss fine-tuning (weight {args.weight}, epsilon {args.epsilon})")
finetuned = copy(standard)
regularized = ki.RegularizedModel(
    finetuned,
    [ki.regularizers.NeuronSensitivity(args.weight, args.epsilon)],
    seed=args.seed,
)
regularized.compile("adam", loss, metrics=["accuracy"])
regularized.fit(x_train, y_train, epochs=args.finetune_epochs, batch_size=64, verbose=2)

print(f"\nOn the test digits (NsLoss at epsilon {args.epsilon}, PGD at {args.pgd_epsilon}):")
scores("standard", standard)
scores("standard, continued", continued)
scores("NsLoss fine-tuned", finetuned)
