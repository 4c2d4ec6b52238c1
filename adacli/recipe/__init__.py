"""The recipe stage: the data model of recipe and suite files, read from YAML with line numbers.

``adacli.recipe.spec`` holds the recipe's pydantic models, ``adacli.recipe.source`` the YAML reader
shared with suite files, ``adacli.recipe.suite`` the suite file. The recipe's names are re-exported
here: ``from adacli.recipe import Recipe, load_recipe``.
"""

from adacli.recipe.spec import (
    DATASETS,
    DEVICES_HELP,
    MAX_SEEDS,
    VERDICT_METRICS,
    BudgetSpec,
    DatasetSpec,
    GateSpec,
    ModelSpec,
    OptimizerSpec,
    Recipe,
    ScheduleSpec,
    SeedPlan,
    StrictModel,
    SweepSpec,
    TargetSpec,
    VerdictSpec,
    assign_labels,
    load_recipe,
    recipe_schema,
    recipe_validation_error,
)

__all__ = [
    "DATASETS",
    "DEVICES_HELP",
    "MAX_SEEDS",
    "VERDICT_METRICS",
    "BudgetSpec",
    "DatasetSpec",
    "GateSpec",
    "ModelSpec",
    "OptimizerSpec",
    "Recipe",
    "ScheduleSpec",
    "SeedPlan",
    "StrictModel",
    "SweepSpec",
    "TargetSpec",
    "VerdictSpec",
    "assign_labels",
    "load_recipe",
    "recipe_schema",
    "recipe_validation_error",
]
