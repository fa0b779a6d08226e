"""The loss comparison, a sibling of the single run (`spikejax.train`) on the shared loop, builders and
evaluation:

  replicas   R models trained in one compiled step (vmap over a replica axis inside the data-parallel step)
  program    one resumable program of replicas on one validation fold
  selection  select, successive halving's cut and the grid's edge extension, as functions of the records
  sweep      tune every loss over its grid on validation folds, halve, extend, select, retrain with fresh seeds,
             test once
  stats      distributions over seeds, exact paired tests, bootstrap CIs, effect sizes, Holm
  report     the comparison's measures, its declared hypotheses and files (comparison.json, replicas.jsonl, plots)
  render     comparison.md from comparison.json alone
"""
