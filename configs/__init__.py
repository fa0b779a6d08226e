"""ml_collections configs: one per dataset, each importing `default`. `for_dataset(name)` loads
configs/<name>.py, the config `--dataset=<name>` selects."""
import importlib


def for_dataset(name: str):
    """The ConfigDict of configs/<name>.py."""
    return importlib.import_module(f"configs.{name}").get_config()
