"""The registered workflow kinds: thin adapters from the lifecycle to one framework each.

They are imported lazily, by kind (see :data:`inferd.repository.WORKFLOWS`), so that a service
that serves no torch model never imports torch.
"""
