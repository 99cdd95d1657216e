"""Plain torch ``Dataset``s and the readers of each dataset format, usable without Lightning.

One module per format (``shapes``, ``tinyimagenet30``, ``cifar10``, ``coco_captions``), the generic datasets they
are built from (``images``: in memory or from files; ``captions``: images with encoded references), the prediction
input of every task (``predict_folder``) and the TinyImageNet30 builder (``build_tinyimagenet30``). The data modules
that split, cache and batch them are in ``vlc.data.modules``; ``vlc.data`` names both.
"""
