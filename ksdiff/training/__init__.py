"""Training of the motion models (`ksdiff train`), one process or many under torchrun.

  loop.py        train(): method resolution, the step loop with DDP in it (nanoGPT's shape), exact resume
  data.py        prepare_data(): the usable train/val clips, checked and normalised; the rank's slice of a step
  checkpoint.py  the model file and the training checkpoints: writer and reader (ksdiff.infer reads through it)
  validation.py  validation loss and the validation lip error (the leaderboard's LVE) of a checkpoint
  logs.py        the long-format CSV log (and TensorBoard when installed)
  device.py      device per process, autocast dtype, batches to the device

Modules import from one another downwards (loop -> data, checkpoint, validation, logs -> device); nothing
here is re-exported, so importing one module loads only what it needs.
"""
