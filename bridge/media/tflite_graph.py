"""Run a small TensorFlow Lite convolutional graph in PyTorch: the operators of MediaPipe's
BlazeFace detectors (Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on
Mobile GPUs", CVPR-W 2019), read from the ``.tflite`` flatbuffer with the ``tflite`` package.

No TensorFlow is needed: constants (float16 or float32) become float32 buffers, and each
operator becomes the matching ``torch.nn.functional`` call, on NHWC activations as in the graph.
This is the fallback of :class:`bridge.media.detectors.BlazeFaceDetector` where Google's LiteRT
runtime (``ai-edge-litert``, 2.4-3.7x faster on CPU) is not installed; the two agree to 2e-4
(``benchmarks/faces.py --check-port``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_FLOAT_TYPES = {0: np.float32, 1: np.float16}  # tflite TensorType FLOAT32, FLOAT16
_INT_TYPES = {2: np.int32, 4: np.int64}
_ACTIVATIONS: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {
    0: lambda x: x,
    1: F.relu,
    2: lambda x: x.clamp(-1.0, 1.0),
    3: lambda x: x.clamp(0.0, 6.0),
}


def _activate(x: torch.Tensor, act: int, in_place: bool = False) -> torch.Tensor:
    """A fused activation; ``in_place`` for a tensor no other step reads (a fresh result)."""
    if in_place and act == 1:
        return x.relu_()
    return _ACTIVATIONS[act](x)


class TFLiteGraph(nn.Module):
    """The first subgraph of a ``.tflite`` model as a PyTorch module.

    Args:
        path: the ``.tflite`` file.

    Call it with NHWC float32 input ``(b, h, w, c)``; it returns the graph's outputs in order,
    each in the graph's own layout (e.g. BlazeFace's ``(b, anchors, 16)`` and ``(b, anchors, 1)``).

    Raises:
        ValueError: an operator this port does not implement.
    """

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        import tflite
        from tflite.BuiltinOperator import BuiltinOperator

        names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
        buf = Path(path).read_bytes()
        model = tflite.Model.GetRootAsModel(buf, 0)
        graph = model.Subgraphs(0)
        self.input_index = int(graph.Inputs(0))
        self.output_indices = [int(graph.Outputs(i)) for i in range(graph.OutputsLength())]
        self.input_shape = tuple(int(v) for v in graph.Tensors(self.input_index).ShapeAsNumpy())  # (1, h, w, c)
        constants: dict[int, np.ndarray] = {}
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            data = model.Buffers(t.Buffer()).DataAsNumpy()
            if isinstance(data, np.ndarray) and data.size:
                dtype = _FLOAT_TYPES.get(t.Type()) or _INT_TYPES.get(t.Type())
                if dtype is None:
                    raise ValueError(f"{path}: tensor {t.Name().decode()} has unsupported type {t.Type()}")
                shape = tuple(int(v) for v in t.ShapeAsNumpy()) if t.ShapeLength() else ()
                constants[i] = np.frombuffer(data.tobytes(), dtype=dtype).reshape(shape)
        self._steps: list[tuple[str, list[int], int, dict]] = []
        self._params = nn.ParameterList()
        self._param_of: dict[int, int] = {}
        for k in range(graph.OperatorsLength()):
            op = graph.Operators(k)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
            inputs = [int(v) for v in op.InputsAsNumpy()] if op.InputsLength() else []
            output = int(op.Outputs(0))
            if name == "DEQUANTIZE":  # a float16 constant: folded at load time
                constants[output] = constants[inputs[0]].astype(np.float32)
                continue
            self._steps.append((name, inputs, output, self._options(name, op, inputs, constants, path)))
        self._constants = constants
        self._uses = Counter(i for _, inputs, _, _ in self._steps for i in inputs)  # steps reading each tensor
        self._uses.update(self.output_indices)
        for name, inputs, _, _ in self._steps:
            for i in inputs:
                if i in constants and i not in self._param_of and name in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD",
                                                                            "CONCATENATION"):
                    self._param_of[i] = len(self._params)
                    self._params.append(nn.Parameter(self._as_torch(name, inputs, i), requires_grad=False))

    def _as_torch(self, op: str, inputs: list[int], index: int) -> torch.Tensor:
        value = np.asarray(self._constants[index], dtype=np.float32)
        if op == "CONV_2D" and index == inputs[1]:
            if value.shape[1:3] == (1, 1) and self._stride_of(inputs) == (1, 1):  # 1x1: a matrix (out, in)
                value = value[:, 0, 0, :]
            else:  # (out, kh, kw, in) -> (out, in, kh, kw)
                value = value.transpose(0, 3, 1, 2)
        elif op == "DEPTHWISE_CONV_2D" and index == inputs[1]:  # (1, kh, kw, out) -> (out, 1, kh, kw)
            value = value.transpose(3, 0, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(value))

    def _stride_of(self, inputs: list[int]) -> tuple[int, int]:
        return next(o["stride"] for _, i, _, o in self._steps if i == inputs)

    @staticmethod
    def _options(name: str, op, inputs: list[int], constants: dict, path) -> dict:
        from tflite.Conv2DOptions import Conv2DOptions
        from tflite.DepthwiseConv2DOptions import DepthwiseConv2DOptions
        from tflite.Pool2DOptions import Pool2DOptions
        from tflite.AddOptions import AddOptions
        from tflite.ConcatenationOptions import ConcatenationOptions
        from tflite.ResizeBilinearOptions import ResizeBilinearOptions

        table = op.BuiltinOptions()
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            o = (Conv2DOptions if name == "CONV_2D" else DepthwiseConv2DOptions)()
            o.Init(table.Bytes, table.Pos)
            return {"stride": (o.StrideH(), o.StrideW()), "same": o.Padding() == 0,
                    "dilation": (o.DilationHFactor() or 1, o.DilationWFactor() or 1),
                    "act": o.FusedActivationFunction()}
        if name == "MAX_POOL_2D":
            o = Pool2DOptions()
            o.Init(table.Bytes, table.Pos)
            return {"stride": (o.StrideH(), o.StrideW()), "kernel": (o.FilterHeight(), o.FilterWidth()),
                    "same": o.Padding() == 0, "act": o.FusedActivationFunction()}
        if name == "ADD":
            o = AddOptions()
            o.Init(table.Bytes, table.Pos)
            return {"act": o.FusedActivationFunction()}
        if name == "CONCATENATION":
            o = ConcatenationOptions()
            o.Init(table.Bytes, table.Pos)
            return {"axis": o.Axis(), "act": o.FusedActivationFunction()}
        if name == "RESIZE_BILINEAR":
            o = ResizeBilinearOptions()
            o.Init(table.Bytes, table.Pos)
            return {"align_corners": o.AlignCorners(), "half_pixel": o.HalfPixelCenters(),
                    "size": tuple(int(v) for v in constants[inputs[1]])}
        if name == "PAD":
            return {"pads": np.asarray(constants[inputs[1]]).reshape(-1, 2).tolist()}
        if name == "RESHAPE":
            shape = constants.get(inputs[1]) if len(inputs) > 1 else None
            if shape is None:
                from tflite.ReshapeOptions import ReshapeOptions

                o = ReshapeOptions()
                o.Init(table.Bytes, table.Pos)
                shape = o.NewShapeAsNumpy()
            return {"shape": [int(v) for v in shape]}
        if name == "RELU":
            return {}
        raise ValueError(f"{path}: operator {name} is not supported by bridge's TFLite port")

    def _value(self, env: dict[int, torch.Tensor], index: int) -> torch.Tensor:
        if index in env:
            return env[index]
        return self._params[self._param_of[index]]

    @staticmethod
    def _same_pads(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                   dilation: tuple[int, int] = (1, 1)) -> tuple[tuple[int, int], tuple[int, int]]:
        """TensorFlow's SAME padding ``((top, bottom), (left, right))``: the extra pixel, if any, goes after."""
        pads = []
        for n, k, s, d in zip(size, kernel, stride, dilation):
            total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        return pads[0], pads[1]

    def _spatial(self, name: str, a: torch.Tensor, o: dict, w: torch.Tensor | None = None,
                 b: torch.Tensor | None = None) -> torch.Tensor:
        """A convolution or max pooling of NHWC ``a``, run on its channels-last NCHW view."""
        x = a.permute(0, 3, 1, 2)
        kernel = tuple(w.shape[-2:]) if w is not None else o["kernel"]
        padding = (0, 0)
        if o["same"]:
            (top, bottom), (left, right) = self._same_pads(tuple(x.shape[-2:]), kernel, o["stride"],
                                                           o.get("dilation", (1, 1)))
            if top == bottom and left == right and w is not None:  # symmetric: the convolution pads, no copy
                padding = (top, left)
            elif top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom), value=0.0 if w is not None else float("-inf"))
        if w is None:
            y = F.max_pool2d(x, kernel, o["stride"])
        else:
            groups = x.shape[1] if name == "DEPTHWISE_CONV_2D" else 1
            y = F.conv2d(x, w, b, stride=o["stride"], padding=padding, dilation=o["dilation"], groups=groups)
        return y.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # Activations stay NHWC, the graph's own layout: a 1x1 convolution is then one matrix product
        # over the channels (F.linear, bias fused), and the others run on the channels-last view.
        # An intermediate used once is overwritten in place (ReLU, the residual ADD).
        env: dict[int, torch.Tensor] = {self.input_index: x}
        for name, inputs, output, o in self._steps:
            a = self._value(env, inputs[0])
            own = inputs[0] in env and inputs[0] != self.input_index and self._uses[inputs[0]] == 1  # read once
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w = self._value(env, inputs[1])
                b = self._value(env, inputs[2]) if len(inputs) > 2 and inputs[2] >= 0 else None
                y = F.linear(a, w, b) if w.ndim == 2 else self._spatial(name, a, o, w, b)
                y = _activate(y, o["act"], in_place=True)
            elif name == "RELU":
                y = a.relu_() if own else F.relu(a)
            elif name == "ADD":
                other = self._value(env, inputs[1])
                y = a.add_(other) if own and other.shape == a.shape else a + other
                y = _activate(y, o["act"], in_place=True)
            elif name == "MAX_POOL_2D":
                y = _activate(self._spatial(name, a, o), o["act"])
            elif name == "PAD":  # NHWC pads -> F.pad's (c, w, h) order, last dimension first
                (_, _), (ht, hb), (wl, wr), (cl, cr) = o["pads"]
                y = F.pad(a, (cl, cr, wl, wr, ht, hb))
            elif name == "RESIZE_BILINEAR":
                y = F.interpolate(a.permute(0, 3, 1, 2), size=o["size"], mode="bilinear",
                                  align_corners=bool(o["align_corners"])).permute(0, 2, 3, 1)
            elif name == "RESHAPE":
                y = a.reshape([x.shape[0] if i == 0 else v for i, v in enumerate(o["shape"])])
            elif name == "CONCATENATION":
                parts = [self._value(env, i) for i in inputs]
                y = _activate(torch.cat(parts, dim=o["axis"] % parts[0].ndim), o["act"])
            else:  # pragma: no cover - rejected in __init__
                raise ValueError(name)
            env[output] = y
        return [env[i] for i in self.output_indices]
