"""The dataset builder (train / val / test as JSONL and Parquet), its loader and its checker.

>>> from seccrm.data import build_suite, load_split, check_suite      # doctest: +SKIP
>>> build_suite("data/tiny", seed=0, size="tiny", train_per_task=12, test_per_task=6)
>>> check_suite("data/tiny")
[]
>>> load_split("data/tiny", "train")[0]["arm"]
'ANALYTICS/easy'
"""

from seccrm.data.balance import prompt_key, stable_seed
from seccrm.data.build import build_suite, instance_id, make_record, pools
from seccrm.data.check import check_suite
from seccrm.data.load import SPLITS, load_split, suite_mode
from seccrm.files import read_jsonl

__all__ = ["SPLITS", "build_suite", "check_suite", "instance_id", "load_split", "make_record", "pools",
           "prompt_key", "read_jsonl", "stable_seed", "suite_mode"]
