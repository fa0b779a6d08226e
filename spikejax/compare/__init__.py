"""The loss comparison, a sibling of the single run (`spikejax.train`) on the shared loop, builders and
evaluation:

  replicas   R models trained in one compiled step (vmap over a replica axis inside the data-parallel step)
  sweep      tune every loss over its grid on validation data, select, retrain with fresh seeds, test once
  stats      summaries over seeds, paired tests, Holm
  report     the comparison's measures, claims and files (comparison.md/json, replicas.jsonl, plots)
"""
