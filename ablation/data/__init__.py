"""The data sets a study can name (ablation/vocabulary/datasets.py lists them).

| name             | what                                           | from                         |
|------------------|------------------------------------------------|------------------------------|
| digits           | 8x8 handwritten digits, upsampled, 1 channel   | scikit-learn's bundled file  |
| cluttered-digits | digits at random places among clutter          | generated from digits        |
| cifar10/cifar100 | 32x32 colour images                            | torchvision files in `root`  |
| imagefolder      | any class-per-folder tree, RGB                 | `root` (train/+val/, or one) |
| fake             | torchvision FakeData noise (smoke tests only)  | generated                    |
| MODULE:NAME      | the researcher's own: `NAME(**dataset.args)`   | `build.plugin_datasets`      |

The train/val split is fixed by the study (`seed_split`), never by the trial seed; the trial
seed only changes initialisation and order. Nothing is downloaded. In-memory sets (digits,
cluttered-digits, fake) come back as `TensorDataset`s of standardised images and are cached in
the process, so a reused Ray worker builds them once.

`identity.data_identity` says what fixes a configuration's images (cheap, torch-free: trial
ids use it); `build.build_datasets` makes the sets.
"""
