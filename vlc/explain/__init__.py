"""Explanations of predictions: Grad-CAM maps for classifiers, attention maps for captioners, and their pictures.

``gradcam`` computes the maps, ``attention`` the captioner's per-word attention, ``render`` draws them over the
images; the tasks' ``explain`` methods put them together and ``vlc predict --writer.explain true`` writes them.
"""
