"""Interoperability: PyTorch `state_dict`s in and out, safetensors files.

    params, state = fnn.interop.from_torch(model, torch_module.state_dict(), input_shape)
    torch_module.load_state_dict(fnn.interop.to_torch(model, params, state, input_shape))
    fnn.interop.save_safetensors("model.safetensors", params)
    params = fnn.interop.load_safetensors("model.safetensors", like=params)

`import fnn.interop` imports neither torch nor safetensors; they are imported when
used (`pip install fnn[interop]`). Add a converter for a layer kind of your own with
`fnn.interop.register(kind, fnn.interop.Converter(keys, from_torch, to_torch))`.
"""
from fnn.interop.converters import CONVERTERS, Converter, Site, register
from fnn.interop.safetensors_io import load_safetensors, save_safetensors
from fnn.interop.state_dict import from_torch, to_torch

__all__ = ["from_torch", "to_torch", "save_safetensors", "load_safetensors", "CONVERTERS",
           "Converter", "Site", "register"]
