"""`gansweep cluster check CLUSTER.yaml`: what would fail only on the nodes of a Ray
cluster-launcher config, refused before `ray up` starts any; `gansweep cluster node-check`:
run by every node's setup, fails it where an NVIDIA GPU is on the bus but torch cannot use it.

Ray validates a config's shape against its schema, but a placeholder AMI, an NFS mount without
nfs-common, an unpinned Ray that a later node installs in another version, or a CUDA wheel the
driver cannot run all pass that and surface minutes later in a node's setup log (or, for the
last two, never: the node is refused or its trials train on the CPU). These are read here from
the commands each node type will run, as Ray composes them: a top-level key given replaces
Ray's default for it whole (so `head_setup_commands: []` drops the boto3 install the head's
autoscaler needs), a node type's own `worker_setup_commands` replaces the shared ones.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from gansweep.trainers.errors import ConfigError

PLACEHOLDER = re.compile(r"FILL_IN_[A-Z0-9_]+")
WHAT_TO_FILL = {
    "FILL_IN_IMAGE_ID": "the id (ami-...) of an Ubuntu 22.04 image with an NVIDIA driver in "
                        "provider.region, e.g. the Deep Learning Base OSS Nvidia Driver GPU AMI",
    "FILL_IN_SECURITY_GROUP_ID": "the id (sg-...) of a security group that admits all traffic "
                                 "from itself (Ray's ports; NFS on 2049 to the EFS mount target "
                                 "in the same group) and SSH from your address",
    "FILL_IN_EFS_DNS": "your EFS file system's DNS name (fs-....efs.REGION.amazonaws.com), "
                       "with a mount target in provider.availability_zone",
}
NETWORK_FS = ("nfs", "nfs4", "efs", "lustre")
MOUNT = re.compile(r"\bmount\s+-t\s+(?P<fs>\w+)\b(?P<args>[^;&|()]*)")
PIP_INSTALL = re.compile(r"\bpip3?\s+install\b")
SHELL_VARIABLE = re.compile(r"\$\{(\w+)[^}]*\}")
NODE_CHECK = "gansweep cluster node-check"
SHARED_DIR = "/mnt/sweeps"
PCI_DEVICES = "/sys/bus/pci/devices"
NVIDIA_VENDOR = "0x10de"
GPU_CLASSES = ("0x0300", "0x0302")  # VGA and 3D controllers; NVSwitch bridges are not GPUs


def add_parser(sub: Any) -> None:
    """Register the `cluster` subcommand on the CLI's subparsers."""
    c = sub.add_parser("cluster", help="check a Ray cluster-launcher config before `ray up`, "
                                       "or a node's GPU during its setup")
    verbs = c.add_subparsers(dest="cluster_command", required=True)
    check = verbs.add_parser("check", help="refuse placeholders, a missing shared mount, "
                                           "unpinned Ray/torch and a missing CUDA check")
    check.add_argument("config", help="the cluster-launcher YAML you will give `ray up`")
    check.add_argument("--spec", default=None,
                       help="the sweep spec you will submit: its storage must be on the shared "
                            f"mount (default: a mount at {SHARED_DIR}) or in a bucket")
    check.set_defaults(func=cmd_check)
    node = verbs.add_parser("node-check", help="(in a node's setup) fail when an NVIDIA GPU is "
                                               "on the PCI bus but torch cannot run on it")
    node.add_argument("--pci-devices", default=PCI_DEVICES, help=f"default {PCI_DEVICES}")
    node.set_defaults(func=cmd_node_check)


def cmd_check(args) -> int:
    config = check_config(Path(args.config), args.spec)
    types = ", ".join(sorted(config["available_node_types"]))
    print(f"{args.config}: ready for `ray up` (node types {types}; Ray "
          f"{importlib.metadata.version('ray')} pinned on every node)")
    return 0


def cmd_node_check(args) -> int:
    node_check(Path(args.pci_devices))
    return 0


# ---- the config -----------------------------------------------------------------------------
def check_config(path: Path, spec: str | None = None, cwd: Path | None = None) -> dict:
    """The config as Ray will run it, or ConfigError listing every problem, each naming its key
    and what to change. `cwd`: where `ray up` runs (file_mounts' local paths start there)."""
    config = _load(path)
    problems = schema_problems(config)
    if not problems and not (config.get("available_node_types") and config.get("head_node_type")):
        problems = ["available_node_types, head_node_type: missing; this check reads each node "
                    "type's setup (and Ray's autoscaler scales node types): declare them as "
                    "cluster.yaml does"]
    if problems:  # the checks below read keys the schema guarantees
        raise ConfigError(_listing(path, problems))
    merged = with_ray_defaults(config)
    problems = placeholder_problems(config)
    checkout, copy_problems = file_mount_problems(merged, cwd or Path.cwd())
    problems += copy_problems
    torch_wanted = _constrained(checkout, "torch")
    storage = _spec_storage(spec)
    for node_type, commands in node_setups(merged).items():
        where = f"the setup of node type {node_type} ({_setup_keys(merged, node_type)})"
        problems += [f"{where}: {p}" for p in setup_problems(
            commands, merged, storage, torch_wanted,
            is_head=node_type == merged["head_node_type"])]
    if "://" not in storage and merged["provider"]["type"] == "aws":
        problems += security_group_problems(merged)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        if not any("ulimit -n" in c for c in merged.get(key) or []):
            problems.append(f"{key}: Ray's default raises the open-files limit (`ulimit -n "
                            "65536; ray start ...`), which a list of your own drops; keep it")
    if problems:
        raise ConfigError(_listing(path, problems))
    return merged


def _load(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"cluster config {path} does not exist; start from cluster.yaml in "
                          "the gansweep checkout")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a cluster config is a mapping (cluster_name, provider, "
                          "available_node_types, ...); start from cluster.yaml")
    return config


def _listing(path: Path, problems: list[str]) -> str:
    return (f"{path} would fail on the cluster ({len(problems)} problem"
            f"{'s' if len(problems) > 1 else ''}; nothing was started):\n"
            + "\n".join(f"  - {p}" for p in problems))


def _ray_dir() -> Path:
    found = importlib.util.find_spec("ray")
    if found is None or not found.origin:
        raise ConfigError("checking a cluster config needs Ray's cluster launcher here: pip "
                          "install 'ray[default]' (the version the config pins)")
    return Path(found.origin).parent


def schema_problems(config: dict) -> list[str]:
    """Ray's own schema (ray/autoscaler/ray-schema.json), as `ray up` applies it."""
    import jsonschema

    schema = json.loads((_ray_dir() / "autoscaler" / "ray-schema.json").read_text())
    return [f"{'.'.join(map(str, e.absolute_path)) or 'the top level'}: {e.message} "
            "(Ray's cluster-config schema)"
            for e in jsonschema.Draft7Validator(schema).iter_errors(config)]


def with_ray_defaults(config: dict) -> dict:
    """Top-level keys as Ray fills them: the provider's defaults.yaml, each key given replacing
    the default whole (ray.autoscaler._private.util.fillout_defaults)."""
    defaults_file = _ray_dir() / "autoscaler" / str(config["provider"]["type"]) / "defaults.yaml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.is_file() else {}
    return {**defaults, **config}


def node_setups(config: dict) -> dict[str, list[str]]:
    """{node type: the setup commands it runs}, as Ray's updater composes them."""
    shared = list(config.get("setup_commands") or [])
    out = {}
    for name, node_type in config["available_node_types"].items():
        if name == config["head_node_type"]:
            out[name] = shared + list(config.get("head_setup_commands") or [])
        elif "worker_setup_commands" in node_type:
            out[name] = list(node_type["worker_setup_commands"] or [])
        else:
            out[name] = shared + list(config.get("worker_setup_commands") or [])
    return out


def _setup_keys(config: dict, node_type: str) -> str:
    if node_type == config["head_node_type"]:
        return "setup_commands + head_setup_commands"
    if "worker_setup_commands" in config["available_node_types"][node_type]:
        return f"available_node_types.{node_type}.worker_setup_commands, which replaces " \
               "setup_commands"
    return "setup_commands + worker_setup_commands"


def placeholder_problems(config: dict) -> list[str]:
    found: dict[str, list[str]] = {}
    for key, value in _leaves(config):
        if isinstance(value, str):
            for token in PLACEHOLDER.findall(value):
                found.setdefault(token, []).append(key)
    problems = []
    for token, keys in found.items():
        also = f" (and {len(keys) - 1} more place{'s' if len(keys) > 2 else ''})" \
            if len(keys) > 1 else ""
        what = WHAT_TO_FILL.get(token, "the value it names")
        problems.append(f"{keys[0]}{also}: {token} is a placeholder; replace it with {what}")
    for key in ("initialization_commands", "setup_commands", "head_setup_commands",
                "worker_setup_commands"):
        for i, command in enumerate(config.get(key) or []):
            for name in SHELL_VARIABLE.findall(command):
                problems.append(
                    f"{key}[{i}]: ${{{name}...}} is expanded by the node's shell over SSH, "
                    "where your variables are not set (it takes the default, or nothing); "
                    "write the value itself")
    return problems


def _leaves(value: Any, key: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{key}[{i}]")
    else:
        yield key, value


def file_mount_problems(config: dict, cwd: Path) -> tuple[Path | None, list[str]]:
    """(the local checkout file_mounts copies, problems): it must reach every node, and only
    what git would track of it: a copied .venv is gigabytes of another machine's binaries,
    sweeps/ may be more."""
    mounts = config.get("file_mounts") or {}
    checkout = next((cwd / Path(str(local)).expanduser() for local in mounts.values()
                     if _is_checkout(cwd / Path(str(local)).expanduser())), None)
    if checkout is None:
        return None, [f"file_mounts: no entry copies a gansweep checkout (its local paths are read "
                f"from where `ray up` runs, here {cwd}); keep `/home/ubuntu/gansweep: .` and "
                "run `ray up` from the checkout's root"]
    problems = []
    if ".gitignore" not in (config.get("rsync_filter") or []):
        problems.append("rsync_filter: without [.gitignore] the whole checkout is copied to "
                        "every node, .venv and sweeps/ included; add rsync_filter: [.gitignore]")
    if not any(p.rstrip("/*").split("/")[-1] == ".git" for p in config.get("rsync_exclude") or []):
        problems.append("rsync_exclude: .git is copied to every node; add rsync_exclude: "
                        "[.git]")
    return checkout.resolve(), problems


def _is_checkout(path: Path) -> bool:
    project = path / "pyproject.toml"
    return project.is_file() and re.search(r'(?m)^name\s*=\s*"gansweep"',
                                           project.read_text()) is not None


def security_group_problems(config: dict) -> list[str]:
    """A node type without SecurityGroupIds gets the group Ray makes for the cluster, which
    admits only itself and SSH: no EFS mount target admits it, so the NFS mount (port 2049)
    times out in setup."""
    missing = sorted(name for name, t in config["available_node_types"].items()
                     if not t["node_config"].get("SecurityGroupIds"))
    if not missing:
        return []
    return [f"available_node_types.{missing[0]}.node_config.SecurityGroupIds"
            f"{' (and ' + ', '.join(missing[1:]) + ')' if missing[1:] else ''}: without a "
            "security group of yours, Ray makes one that your EFS mount target does not admit "
            "and the NFS mount (port 2049) times out; give every node type SecurityGroupIds: "
            "[sg-...], a group that admits all traffic from itself, with the mount target in it"]


def _spec_storage(spec: str | None) -> str:
    if spec is None:
        return SHARED_DIR
    from gansweep.jobs.spec import load_spec

    load_spec(spec)  # a spec that does not validate is refused with its own message
    # The path as written: the parsed spec's is resolved against this machine's disk.
    return str(yaml.safe_load(Path(spec).read_text()).get("storage", "sweeps"))


def setup_problems(commands: list[str], config: dict, storage: str,
                   torch_wanted: str | None, is_head: bool) -> list[str]:
    problems = []
    text = "\n".join(commands)
    installs = [c for c in commands if PIP_INSTALL.search(c)]
    ray_pin = next((m.group(2) for c in installs
                    if (m := re.search(r"\bray(\[[^\]]*\])?==([\w.]+)", c))), None)
    here = importlib.metadata.version("ray")
    if ray_pin is None:
        problems.append(f'Ray is not pinned; pip install "ray[default,tune]=={here}" (a node '
                        "added after a Ray release would install the new one, and a worker "
                        "whose Ray differs from the head's is refused)")
    elif ray_pin != here:
        problems.append(f"it pins ray=={ray_pin} but this machine runs Ray {here}, which "
                        f"`ray up` and `ray job submit` use; pin ray=={here} or install "
                        f"ray=={ray_pin} here")
    torch_pin = next((m.group(1) for c in installs
                      if (m := re.search(r"\btorch==([\w.+]+)", c))), None)
    if torch_pin is None:
        problems.append(f"torch is not pinned; pip install torch=={torch_wanted or 'VERSION'} "
                        "(the version constraints.txt names), or each node gets whatever is "
                        "newest")
    elif torch_wanted and torch_pin.split("+")[0] != torch_wanted.split("+")[0]:
        problems.append(f"it pins torch=={torch_pin} but the checkout's constraints.txt names "
                        f"{torch_wanted}; use one version everywhere")
    if not any(t.strip("\"'").rstrip("/").endswith("/gansweep") for c in installs
               for t in c.split()):
        problems.append("gansweep is never installed; pip install -e the checkout that "
                        "file_mounts copies (~/gansweep)")
    if not is_head:
        check_at = next((i for i, c in enumerate(commands) if NODE_CHECK in c), None)
        install_at = max((i for i, c in enumerate(commands) if c in installs), default=-1)
        if check_at is None or check_at < install_at:
            problems.append(f"nothing checks that torch can use this node's GPU; end the setup "
                            f"with `{NODE_CHECK}`, which fails it loudly where CUDA is unusable "
                            "(else trials given a GPU there fail one by one)")
    if is_head and config["provider"]["type"] == "aws" and "boto3" not in text:
        problems.append('boto3 is never installed, and the head\'s autoscaler launches workers '
                        'through it; add pip install "boto3>=1.4.8" to head_setup_commands '
                        "(Ray's default there, which a list of your own replaces)")
    if "://" not in storage:
        problems += mount_problems(commands, storage)
    return problems


def mount_problems(commands: list[str], storage: str) -> list[str]:
    mounts = []  # (index, filesystem type, mount point)
    for i, command in enumerate(commands):
        for m in MOUNT.finditer(command):
            args = m.group("args").split()
            if m.group("fs") in NETWORK_FS and args:
                mounts.append((i, m.group("fs"), args[-1].rstrip("/") or "/"))
    target = storage.rstrip("/")
    shared = [(i, fs, point) for i, fs, point in mounts
              if target == point or target.startswith(point + "/")]
    if not shared:
        return [f"{storage} is not on a shared filesystem: no `mount -t nfs4|efs ...` puts one "
                "there, so each node would write its own sweep directory and trials fail at "
                f"their final checkpoint; mount your NFS/EFS at {storage} (or use storage: "
                "s3://BUCKET/PREFIX and --spec)"]
    i, fs, _ = shared[0]
    if fs.startswith("nfs") and not any("nfs-common" in c for c in commands[:i]):
        return ["it mounts NFS without installing nfs-common first (mount.nfs4 comes with it); "
                "add sudo apt-get install -y nfs-common before the mount"]
    return []


def _constrained(checkout: Path | None, package: str) -> str | None:
    """The version the copied checkout's constraints.txt pins for `package`."""
    place = checkout / "constraints.txt" if checkout else None
    if place is None or not place.is_file():
        return None
    m = re.search(rf"(?m)^{package}==(\S+)", place.read_text())
    return m.group(1) if m else None


# ---- a node's GPU ----------------------------------------------------------------------------
def nvidia_gpus(devices: Path) -> list[str]:
    """PCI addresses of the NVIDIA GPUs on the bus: present whether or not a driver is loaded,
    so a GPU node without a usable driver is still known for one."""
    found = []
    for device in sorted(devices.glob("*")):
        try:
            vendor = (device / "vendor").read_text().strip()
            kind = (device / "class").read_text().strip()
        except OSError:
            continue
        if vendor == NVIDIA_VENDOR and kind[:6] in GPU_CLASSES:
            found.append(device.name)
    return found


def node_check(devices: Path = Path(PCI_DEVICES), log=print) -> None:
    gpus = nvidia_gpus(devices)
    if not gpus:
        log("[gansweep] node-check: no NVIDIA GPU on this node's PCI bus; nothing to check")
        return
    import torch

    from gansweep.trainers.base import cuda_problem

    problem = cuda_problem()
    if problem is None and torch.cuda.device_count() < len(gpus):
        problem = f"it sees {torch.cuda.device_count()} of them"
    if problem:
        raise ConfigError(
            f"this node has {len(gpus)} NVIDIA GPU{'s' if len(gpus) > 1 else ''} "
            f"({', '.join(gpus)}) but torch {torch.__version__} (CUDA "
            f"{torch.version.cuda or 'none'}) cannot use {'them' if len(gpus) > 1 else 'it'}: "
            f"{problem}. {_driver()}Trials given a GPU here would fail. Use an image whose "
            f"NVIDIA driver supports CUDA {torch.version.cuda or '12'} in cluster.yaml's "
            "ImageId, or pin the torch build for this driver in its setup_commands")
    log(f"[gansweep] node-check: torch {torch.__version__} runs on "
        f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}")


def _driver() -> str:
    """What nvidia-smi says of the driver, as a sentence ('' without nvidia-smi)."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi is not installed (no NVIDIA driver?). "
    try:
        head = subprocess.run(["nvidia-smi"], capture_output=True, text=True,
                              timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"nvidia-smi failed ({exc}). "
    m = re.search(r"Driver Version:\s*(\S+).*?CUDA Version:\s*(\S+)", head)
    return (f"The driver is {m.group(1)}, for CUDA up to {m.group(2)}. " if m
            else "nvidia-smi reports no driver. ")
