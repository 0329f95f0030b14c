"""CPU and memory budgets per component: the rules (pure), the cgroups that enforce them, and the
bottleneck they name."""
