"""ResNet Lab: the code behind the executable book on residual networks.

Modules (each readable in one sitting):

* :mod:`resnet_lab.models`: BasicBlock, Bottleneck, one ResNet builder and
  its constructors (ImageNet, CIFAR, plain, D2L).
* :mod:`resnet_lab.trace`: shape, parameter and MAC tables via forward hooks.

Importing the package does no work: no data is read, no model is built.
"""

__version__ = "0.1.0"
