"""What a weights file is: the format tags that loading records and the error for a bad file.

Below both :mod:`mrcnn.weights.loading` (which re-exports these names) and
:mod:`mrcnn.weights.keras_h5`, so
that the .h5 reader and the loader that dispatches to it need not import each other.
"""

#: ``extras["format"]`` of weights read from a Matterport Keras .h5 file.
MATTERPORT_H5_FORMAT = "matterport-h5"
#: ``extras["format"]`` of a .safetensors written by ``mrcnn convert`` (weights and config).
CONVERTED_FORMAT = "mrcnn-weights"


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable, or does not fit the network."""
