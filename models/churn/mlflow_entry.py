"""MLflow "models from code" entry point: logged as the churn model's code, executed when it is loaded."""

from mlflow.models import set_model

from models.churn.pyfunc import ChurnPyfunc

set_model(ChurnPyfunc())
