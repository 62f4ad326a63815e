"""MLflow "models from code" entry point: the servable StreamGuard model, without pickling a class.

``serving.save_servable_model`` passes this file as ``python_model``; MLflow runs it when the
model is loaded. The weights and the threshold come from the model's ``scorer`` artefact.
"""

import mlflow.models

from streamguard.serving.model import StreamGuardModel

mlflow.models.set_model(StreamGuardModel())
