"""Running DVC stages on Prefect workers: each worker's own git checkout, `dvc repro --pull` and the pushes that let
any other checkout restore the result instead of recomputing it. Plain Python (no Prefect import): the flows in
`flows/` are thin wrappers around it."""
