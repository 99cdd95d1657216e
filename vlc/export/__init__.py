"""``vlc export``: a checkpoint as ONNX files that run without torch, checked against the checkpoint's own outputs.

- ``command``: the command line, finding the checkpoint and saying what was written;
- ``checkpoint``: the task rebuilt from a checkpoint of a known kind, in evaluation mode;
- ``onnx_file``: ``torch.onnx.export`` as vlc needs it (one file, dynamic batch, float32) and the output check;
- ``classifier``: one file, uint8 images to class probabilities;
- ``captioner``: the encoder and one decoder step, with the vocabulary beside them.

The format is ``vlc.onnx_format``; ``python -m vlc.onnx_predict`` reads it without torch.
"""
