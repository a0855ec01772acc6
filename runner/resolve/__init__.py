"""Resolving a request: a step made concrete for one request, from its inputs, secrets,
values and the outputs of earlier steps."""
