"""ResNet Lab: the code behind the executable book on residual networks.

Modules (each readable in one sitting):

* :mod:`resnet_lab.models`: BasicBlock, Bottleneck, one ResNet builder and
  its constructors (ImageNet, CIFAR, plain, D2L).
* :mod:`resnet_lab.trace`: shape, parameter and MAC tables via forward hooks.
* :mod:`resnet_lab.data`, :mod:`resnet_lab.loader`, :mod:`resnet_lab.recipes`,
  :mod:`resnet_lab.train`, :mod:`resnet_lab.runs`: data, batches, how to
  train, one network's training, many networks' runs with plans and resume.
* :mod:`resnet_lab.chapters`: one module per chapter (its sizes per profile,
  the builders of its networks, its plan, measurements and verdicts).
* :mod:`resnet_lab.settings`: every environment variable, read in one place.

The core knows no chapter: chapters import the core, and only
:mod:`resnet_lab.profiles` looks chapters up (to plan over their plans).

Importing the package does no work: no data is read, no model is built.
"""

__version__ = "0.1.0"
