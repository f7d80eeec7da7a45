"""The synthetic talking-head corpus (`ksdiff synth`): real face photos animated
by a mesh warp, espeak-ng speech with known text, and per-frame ground-truth
motion (head pose, jaw opening, lip spread) driven by that speech.

Modules: speech (voices, sentences), faces (photos, framing, face mesh),
motion (ground truth from the audio), warp (mesh deformation, image warp,
mouth interior), corpus (layouts, files, make_corpus).
"""
