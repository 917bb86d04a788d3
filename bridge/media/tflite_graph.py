"""Run a small TensorFlow Lite convolutional graph in PyTorch: the operators of MediaPipe's
BlazeFace detectors (Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on
Mobile GPUs", CVPR-W 2019), read from the ``.tflite`` flatbuffer with the ``tflite`` package.

No TensorFlow is needed: constants (float16 or float32) become float32 buffers, and each
operator becomes the matching ``torch.nn.functional`` call. Activations are kept NCHW; the
graph's NHWC layout is restored where it matters (reshapes, concatenation axes, padding).
"""

from __future__ import annotations

import os
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
        for name, inputs, _, _ in self._steps:
            for i in inputs:
                if i in constants and i not in self._param_of and name in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD",
                                                                            "CONCATENATION"):
                    self._param_of[i] = len(self._params)
                    self._params.append(nn.Parameter(self._as_torch(name, inputs, i), requires_grad=False))

    def _as_torch(self, op: str, inputs: list[int], index: int) -> torch.Tensor:
        value = np.asarray(self._constants[index], dtype=np.float32)
        if op == "CONV_2D" and index == inputs[1]:  # (out, kh, kw, in) -> (out, in, kh, kw)
            value = value.transpose(0, 3, 1, 2)
        elif op == "DEPTHWISE_CONV_2D" and index == inputs[1]:  # (1, kh, kw, out) -> (out, 1, kh, kw)
            value = value.transpose(3, 0, 1, 2)
        elif value.ndim == 4:  # an NHWC constant operand -> NCHW
            value = value.transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(value))

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
    def _same_pad(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                  dilation: tuple[int, int] = (1, 1), value: float = 0.0) -> torch.Tensor:
        """TensorFlow's SAME padding: the extra pixel, if any, goes after (bottom, right)."""
        pads = []
        for size, k, s, d in zip(x.shape[-2:], kernel, stride, dilation):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom), value=value)
        return x

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        env: dict[int, torch.Tensor] = {self.input_index: x.permute(0, 3, 1, 2)}  # (b, c, h, w)
        for name, inputs, output, o in self._steps:
            a = self._value(env, inputs[0])
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w = self._value(env, inputs[1])
                b = self._value(env, inputs[2]) if len(inputs) > 2 and inputs[2] >= 0 else None
                if o["same"]:
                    a = self._same_pad(a, tuple(w.shape[-2:]), o["stride"], o["dilation"])
                groups = a.shape[1] if name == "DEPTHWISE_CONV_2D" else 1
                y = F.conv2d(a, w, b, stride=o["stride"], dilation=o["dilation"], groups=groups)
                y = _ACTIVATIONS[o["act"]](y)
            elif name == "RELU":
                y = F.relu(a)
            elif name == "ADD":
                y = _ACTIVATIONS[o["act"]](a + self._value(env, inputs[1]))
            elif name == "MAX_POOL_2D":
                if o["same"]:
                    a = self._same_pad(a, o["kernel"], o["stride"], value=float("-inf"))
                y = _ACTIVATIONS[o["act"]](F.max_pool2d(a, o["kernel"], o["stride"]))
            elif name == "PAD":  # NHWC pads -> F.pad's (w, h, c) order for NCHW
                (_, _), (ht, hb), (wl, wr), (cl, cr) = o["pads"]
                y = F.pad(a, (wl, wr, ht, hb, cl, cr))
            elif name == "RESIZE_BILINEAR":
                y = F.interpolate(a, size=o["size"], mode="bilinear", align_corners=bool(o["align_corners"]))
            elif name == "RESHAPE":
                if a.ndim == 4:
                    a = a.permute(0, 2, 3, 1)  # back to the graph's NHWC order before flattening
                shape = [x.shape[0] if i == 0 else v for i, v in enumerate(o["shape"])]
                y = a.reshape(shape)
            elif name == "CONCATENATION":
                parts = [self._value(env, i) for i in inputs]
                axis = o["axis"] % parts[0].ndim
                if parts[0].ndim == 4:
                    axis = {0: 0, 1: 2, 2: 3, 3: 1}[axis]
                y = _ACTIVATIONS[o["act"]](torch.cat(parts, dim=axis))
            else:  # pragma: no cover - rejected in __init__
                raise ValueError(name)
            env[output] = y
        outs = []
        for i in self.output_indices:
            y = env[i]
            outs.append(y.permute(0, 2, 3, 1) if y.ndim == 4 else y)
        return outs
