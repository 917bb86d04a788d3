"""``python -m bridge.release``: build, pack, follow or check a release folder (:mod:`bridge.release`).

    python -m bridge.release build              # train every stage of recipes/release/emotion7.json, then pack
    python -m bridge.release status             # how far each stage is
    python -m bridge.release pack CHECKPOINT --name NAME
    python -m bridge.release verify [NAME]      # every file against the manifest
"""

from __future__ import annotations

from pathlib import Path

import bridge.release as release
from bridge.release import DEFAULT_RELEASE, MANIFEST, locate, pack, verify


def main(argv: list[str] | None = None) -> int:
    import argparse

    from bridge.cli import run_cli

    p = argparse.ArgumentParser(prog="python -m bridge.release",
                                description="Build, pack, follow or check a release folder.")
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack", help="write a release folder from a checkpoint")
    pk.add_argument("checkpoint")
    pk.add_argument("--name", default=DEFAULT_RELEASE)
    pk.add_argument("--output", default=None, help="default: bridge/pretrained/NAME")
    pk.add_argument("--card", default=None, help="a model card (Markdown) to include")
    bd = sub.add_parser("build", help="train every stage of a release recipe (resumably), then pack it")
    bd.add_argument("--recipe", default="recipes/release/emotion7.json")
    bd.add_argument("--checkpoints", default="checkpoints/release", help="where the stages are trained")
    bd.add_argument("--data-root", default=None, help="data root (default: $BRIDGE_DATA_ROOT or ../shared/data)")
    bd.add_argument("--no-pack", action="store_true", help="train only")
    bd.add_argument("--stages", nargs="+", default=None, metavar="STAGE",
                    help="train only these stages (the stages they start from must be finished); "
                         "the release is packed once every stage is")
    st = sub.add_parser("status", help="how far each stage of a release build is")
    st.add_argument("--recipe", default="recipes/release/emotion7.json")
    st.add_argument("--checkpoints", default="checkpoints/release", help="where the stages are trained")
    ck = sub.add_parser("verify", help="check a release folder against its manifest")
    ck.add_argument("release", nargs="?", default=DEFAULT_RELEASE)
    args = p.parse_args(argv)

    def body() -> int:
        if args.command == "build":
            from bridge.release.builder import build

            build(Path(args.recipe), Path(args.checkpoints), args.data_root, not args.no_pack, args.stages)
        elif args.command == "status":
            from bridge.release.builder import status

            print("\n".join(status(Path(args.recipe), Path(args.checkpoints))))
        elif args.command == "pack":
            output = Path(args.output) if args.output else release.RELEASES / args.name
            card = Path(args.card).read_text(encoding="utf-8") if args.card else None
            manifest = pack(Path(args.checkpoint), output, args.name, card)
            size = sum(f["bytes"] for f in manifest["files"].values())
            print(f"packed {args.checkpoint} into {output}: {len(manifest['files'])} files, {size / 1e6:.1f} MB")
        else:
            folder = locate(args.release)
            verify(folder)
            print(f"{folder}: every file matches {MANIFEST}")
        return 0

    return run_cli("bridge.release", body)
