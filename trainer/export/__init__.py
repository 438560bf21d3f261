"""The exports of a trained model (TF Hub encoder, preprocessing, classifiers). The names here load
without TensorFlow, so the commands' parsers (``trainer.cli``) offer them before its import."""

EXPORT_TYPES = ("model", "model_with_mlm", "preprocessing", "text_embedder", "classifier", "text_classifier")
POOLERS = ("trained", "untrained", "copy_from_nsp", "identity")
