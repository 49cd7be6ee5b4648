"""axonlink's tests: a package, so they share helpers by import (``tests.helpers``, ``tests.layers``)."""
