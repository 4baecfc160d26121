"""``python -m caxton_actors`` runs the same CLI as ``caxton-actors``."""

from caxton_actors.cli import main

raise SystemExit(main())
