"""Cohort statistics, trends and model monitoring: pure functions with thin Django glue."""
