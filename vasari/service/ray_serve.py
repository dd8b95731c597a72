"""Vasari's web page and REST API as a Ray Serve deployment, for users who already run Ray.

Each replica builds the same FastAPI app as `vasari serve` (``create_app_from_env``: the bundle
named by ``VASARI_MODEL``, opened read-only, loaded in the background while /readyz answers
503), so a Ray Serve replica and a `vasari serve` process answer alike; Ray Serve's proxy spreads
requests over ``num_replicas`` of them. Without Ray, run several `vasari serve` processes behind
any load balancer instead (docs/scale.md).

    serve run vasari.service.ray_serve:app_builder num_replicas=2 model=/srv/vasari/bundle

This module imports Ray at the top: only Ray Serve loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray import serve

from vasari.service.app import create_app_from_env


@dataclass(frozen=True)
class ServeOptions:
    """The deployment's settings: ``num_replicas`` app replicas, each reserving ``num_cpus``
    (inference threads run inside it), serving the bundle at ``model`` (None: the shipped one)."""

    num_replicas: int = 2
    num_cpus: float = 1.0
    model: str | None = None

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> "ServeOptions":
        """From `serve run ... key=value` arguments (strings)."""
        known = {"num_replicas", "num_cpus", "model"}
        unknown = sorted(set(args) - known)
        if unknown:
            raise ValueError(f"unknown argument(s) {', '.join(unknown)}; give {', '.join(sorted(known))}")
        return cls(num_replicas=int(args.get("num_replicas", 2)), num_cpus=float(args.get("num_cpus", 1.0)),
                   model=args.get("model") or None)


def vasari_deployment(options: ServeOptions = ServeOptions()) -> Any:
    """The bound deployment (``serve.run(vasari_deployment(...))``): ``create_app_from_env``
    behind ``serve.ingress``, ``num_replicas`` replicas, the bundle passed by environment."""
    env = {"VASARI_MODEL": options.model} if options.model else {}
    ingress = serve.ingress(create_app_from_env)()
    deployment = serve.deployment(
        ingress, name="vasari", num_replicas=options.num_replicas,
        ray_actor_options={"num_cpus": options.num_cpus, "runtime_env": {"env_vars": env}},
    )
    return deployment.bind()


def app_builder(args: dict[str, Any]) -> Any:
    """The application builder of `serve run vasari.service.ray_serve:app_builder key=value...`."""
    return vasari_deployment(ServeOptions.from_args(args))
