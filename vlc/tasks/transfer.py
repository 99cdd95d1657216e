"""Transfer learning: start a network from a vlc checkpoint's features, freeze layers, scale pre-trained lrs.

Layer names are those of the classifier's parameters (``net.features.0``, ``net.head``); every function here
takes the network itself (the classifier's ``net``) and accepts names with or without the ``net.`` prefix.
"""

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from vlc.checkpoints import classifier_features
from vlc.errors import UserError

HEAD = "head"
"""The attribute of every vlc network that maps features to class logits (rebuilt, never loaded)."""

TORCHVISION_HINT = "torchvision weights (a name or a state-dict file) go to net.init_args.weights of TorchvisionNet"


def matches(name: str, prefix: str) -> bool:
    """Whether the dotted ``name`` is ``prefix`` or lies under it (``""`` matches everything)."""
    return not prefix or name == prefix or name.startswith(prefix + ".")


def _few(names: list[str], k: int = 4) -> str:
    shown = ", ".join(names[:k])
    return shown + (f", ... ({len(names) - k} more)" if len(names) > k else "")


@dataclass
class LoadReport:
    """What ``load_features`` did, tensor by tensor (names relative to the classifier, ``net.``...)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few readable lines: counts and the first names of each kind."""
        lines = [f"init_from {self.source}:"]
        for label, names in (
            ("loaded", self.loaded),
            ("new (random init)", self.new),
            ("shape mismatch (random init)", self.mismatched),
            ("in checkpoint, not in net", self.unused),
        ):
            lines.append(f"  {label}: {len(names)}" + (f" - {_few(names)}" if names else ""))
        return "\n".join(lines)


def load_features(net: nn.Module, path: str | Path) -> LoadReport:
    """Copy into ``net`` the feature tensors of the checkpoint at ``path`` whose names and shapes fit.

    The head is never loaded: it keeps its fresh initialisation for the new classes.

    Raises:
        UserError: ``path`` is not a vlc classification checkpoint, or none of its tensors fit ``net``.
    """
    source, target = classifier_features(path, "model.init_from", f"; {TORCHVISION_HINT}")[0], net.state_dict()
    report = LoadReport(str(path))
    fitting = {}
    for name, tensor in source.items():
        if name not in target:
            report.unused.append(f"net.{name}")
        elif tensor.shape != target[name].shape:
            report.mismatched.append(f"net.{name} {tuple(tensor.shape)} -> {tuple(target[name].shape)}")
        else:
            fitting[name] = tensor
    if not fitting:
        raise UserError(
            f"model.init_from: none of the {len(source)} feature tensors of {path} fit model.net "
            f"(a different network? {report.mismatched[:1] or report.unused[:1]})"
        )
    net.load_state_dict(fitting, strict=False)
    report.loaded = [f"net.{name}" for name in fitting]
    report.new = [f"net.{name}" for name in target if name not in source]
    return report


def layer_names(net: nn.Module) -> list[str]:
    """The names ``freeze`` lists when a name matches nothing: ``net.<child>.<grandchild>`` or ``net.<child>``."""
    names = []
    for child_name, child in net.named_children():
        grandchildren = [f"net.{child_name}.{name}" for name, _ in child.named_children()]
        names += grandchildren or [f"net.{child_name}"]
    return names


def _block_prefixes(net: nn.Module, spec: str) -> list[str]:
    features = getattr(net, "features", None)
    children = [name for name, _ in features.named_children()] if isinstance(features, nn.Module) else []
    count = spec.split(":", 1)[1].strip()
    if not children or not count.isdigit() or int(count) > len(children):
        raise UserError(
            f"model.freeze: {spec!r} must be 'blocks:N' with N in 0..{len(children)}, the number of children of "
            f"net.features ({_few([f'net.features.{c}' for c in children], 8)})"
        )
    return [f"features.{name}" for name in children[: int(count)]]


def freeze_prefixes(net: nn.Module, spec: str | list[str]) -> list[str]:
    """The parameter-name prefixes (relative to ``net``) that ``spec`` freezes; see ``freeze``."""
    if spec == "none":
        return []
    if spec == "features":
        if not hasattr(net, HEAD):
            raise UserError("model.freeze: 'features' needs a network with a head (net.head)")
        return [n for n, _ in net.named_children() if n != HEAD] + [n for n, _ in net.named_parameters(recurse=False)]
    if isinstance(spec, str) and spec.startswith("blocks:"):
        return _block_prefixes(net, spec)
    spec = [spec] if isinstance(spec, str) else list(spec)
    names = [name for name, _ in net.named_parameters()]
    prefixes = []
    for given in spec:
        prefix = "" if given == "net" else given.removeprefix("net.")
        if not any(matches(name, prefix) for name in names):
            raise UserError(
                f"model.freeze: {given!r} matches no parameter; use 'none', 'features', 'blocks:N' or names "
                f"such as {', '.join(layer_names(net))}"
            )
        prefixes.append(prefix)
    return prefixes


def freeze_layers(net: nn.Module, spec: str | list[str]) -> list[nn.Module]:
    """Stop gradients to the parameters that ``spec`` names and return the frozen modules.

    Args:
        net: the network (the classifier's ``net``).
        spec: ``none``; ``features`` (everything but the head); ``blocks:N`` (the first N children of
            ``net.features``); or one name or a list of names (prefixes such as ``net.features.0``).

    Returns:
        The modules under the frozen names (their batch-norm layers should stay in eval mode).

    Raises:
        UserError: ``spec`` names nothing in ``net``.
    """
    prefixes = freeze_prefixes(net, spec)
    if not prefixes:
        return []
    for name, param in net.named_parameters():
        if any(matches(name, p) for p in prefixes):
            param.requires_grad_(False)
    return [module for name, module in net.named_modules() if any(matches(name, p) for p in prefixes)]


def batch_norms(modules: list[nn.Module]) -> list[nn.Module]:
    """The batch-norm layers among ``modules``."""
    return [m for m in modules if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def parameter_counts(module: nn.Module) -> tuple[int, int]:
    """Numbers of trainable and frozen parameters (elements, not tensors)."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in module.parameters()) - trainable


def param_groups(module: nn.Module, lr_scale: float = 1.0, head: str = f"net.{HEAD}") -> list:
    """The trainable parameters of ``module`` for the optimizer, split in two groups when ``lr_scale != 1``.

    The group ``pretrained`` (every trainable parameter outside ``head``) carries ``lr_scale``, which
    ``vlc.tasks.optim.configure`` applies to its learning rate (and to ``OneCycleLR``'s ``max_lr``).
    """
    trainable = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    if lr_scale == 1.0:
        return [p for _, p in trainable]
    groups = [
        {"params": [p for n, p in trainable if matches(n, head)], "name": "head"},
        {"params": [p for n, p in trainable if not matches(n, head)], "name": "pretrained", "lr_scale": lr_scale},
    ]
    return [g for g in groups if g["params"]]
