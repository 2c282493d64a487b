"""The dvc.yaml stages that train the embedded world's models (`dvc repro` re-creates models/).

vae          stage `pretrain_vae`: the AutoencoderKL (32x32 RGB <-> 8x8x4 latents)
base         stage `pretrain_base`: the text-to-image base with its ICGen path
evaluator    stage `pretrain_evaluator`: the CLIP and DINO analogues
further      an existing base trained further from another seed (a second base for `lfsd migrate`)
data         batches of world images as tensors for all three
"""
