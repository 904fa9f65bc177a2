"""Training: losses, optimisers, augmentations, recipes, the training state, and the trainers.

Holds: `losses` (Barlow Twins, triplet with in-batch mining, InfoNCE), `optim` (LARS and its
schedule), `augment` (Barlow Twins views, fine-tuning views), `recipes` (every trainer's
settings per profile, and the one registry of fine-tuning recipes by slug), `state` (one
checkpoint + training-state format, resume, cached runs), `trunk` (the frozen trunk's
cached outputs), `finetune` (InfoNCE / triplet fine-tuning), `pretrain` (Barlow Twins,
DDP-correct), `pair_classifier` (the learned-distance baseline), `ablation` (recipes compared
on pairs held out from training), `candidates` (learning from candidate lists: the one-to-one
assignment, pseudo-pairs and their accuracy, the MIL-NCE loss).

May import: `evaluate` (ranks and metrics, to validate and compare), `models`, `data`, and
the utilities.
"""
