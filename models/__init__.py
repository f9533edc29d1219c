"""Pure model code: churn (LightGBM + baselines), clv (BTYD via lifetimes), evaluation."""
