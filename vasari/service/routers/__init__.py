"""The service's routes, one APIRouter per area: predict, model, ops (probes), pages."""
