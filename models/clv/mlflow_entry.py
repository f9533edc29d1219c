"""MLflow "models from code" entry point: logged as the CLV model's code, executed when it is loaded."""

from mlflow.models import set_model

from models.clv.pyfunc import ClvPyfunc

set_model(ClvPyfunc())
