"""The expression language: yq-style queries, JMESPath with the runner's functions,
${{ }} templates, typed rendering, set paths and manifest documents."""
