"""``python -m vlc.onnx_predict MODEL.onnx IMAGES``: predict with an exported model, without torch.

It needs only onnxruntime, numpy and Pillow (no torch, Lightning or the rest of vlc's dependencies; importing this
package imports nothing heavy). Its modules:

- ``__main__``: the command line, the checks made before any work, the files written;
- ``runtime``: onnxruntime sessions and the metadata ``vlc export`` wrote (``vlc.onnx_format``);
- ``folder``: the images of a folder as uint8 batches, read by vlc's own rules (``vlc.image_files``), and the files
  left out with their reasons;
- ``classify``: a classifier's rows (label, probability, top-k), as ``vlc predict`` writes them;
- ``caption``: a captioner's rows: the encoder, then ``beam_search`` over the exported decoder step;
- ``beam_search``: greedy and batched beam search in numpy, the algorithm of ``vlc.models.decoding``.
"""
