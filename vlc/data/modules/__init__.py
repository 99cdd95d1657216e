"""The LightningDataModules, named by configs and checkpoints as ``vlc.data.<Name>``.

``base`` holds what every data module shares, ``classification`` and ``captioning`` the two kinds of task, and one
module per dataset the rest (its reader and ``Dataset`` are in ``vlc.data.datasets``).
"""
