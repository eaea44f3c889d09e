"""The version of the prompt rules, stamped on every ``prompts.json`` (and, with the metric rules, on every
evaluation-log line and zero-shot store file), so prompts drawn under other rules are never mixed with
today's: a prompts file of another version is refused, a row of another version is scored again.
"""

# Bump by one for any change that gives another prompt for the same (mask, strategy, seed, object key,
# sampling): the point and box rules of S2-S6 (sam4med.prompts.generate: the centre rule, the negative
# points' region, the box and its margin, strided sampling, the nested S2/S3/S4/S6 points), how a prompt's
# seed is derived, or the fields of a stored Prompt. A change that only adds a new strategy or sampling
# value (old prompts stay what they were) needs no bump.
# 1: the rules of docs/strategies.md as of issue 22 (the first version recorded; files without a version
#    were written before it and are refused).
PROMPT_RULES = 1
