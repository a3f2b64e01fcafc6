"""Fleet-provisioning templates declared in DIR/templates.json.

    {
      "templates": {
        "chariotd-sim": {
          "parameters": ["SerialNumber"],                  # required; or {"Name": {"default": "x"}}
          "thingName": "sim-{SerialNumber}",               # {Parameter} is replaced
          "deviceConfiguration": {"greeting": "hello {SerialNumber}"},   # flat map
          "certificateStatus": "ACTIVE",                   # or "INACTIVE"
          "deny": {"SerialNumber": ["0000"]}               # a pre-provisioning hook's refusal
        }
      }
    }
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

TEMPLATES_FILE = "templates.json"
DEFAULT_TEMPLATE = "chariotd-sim"
DEFAULT_TEMPLATES = {
    "templates": {
        DEFAULT_TEMPLATE: {
            "parameters": ["SerialNumber"],
            "thingName": "sim-{SerialNumber}",
            "deviceConfiguration": {"serial": "{SerialNumber}", "greeting": "hello"},
            "certificateStatus": "ACTIVE",
        }
    }
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_:.-]+)\}")


class TemplateError(ValueError):
    """The templates file itself is wrong (a configuration error, not a device's fault)."""


class ParameterError(ValueError):
    """The device's parameters do not fit the template."""


def substitute(text: str, parameters: Dict[str, str]) -> str:
    """Replace each {Name} in TEXT by the parameter's value; a missing one is an error."""
    def value(match):
        name = match.group(1)
        if name not in parameters:
            raise ParameterError(f"Missing required parameter: {name}")
        return parameters[name]
    return _PLACEHOLDER.sub(value, text)


@dataclass(frozen=True)
class Template:
    name: str
    thing_name: str
    required: List[str] = field(default_factory=list)
    defaults: Dict[str, str] = field(default_factory=dict)
    device_configuration: Dict[str, str] = field(default_factory=dict)
    certificate_status: str = "ACTIVE"
    deny: Dict[str, List[str]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, name: str, doc: dict) -> "Template":
        if not isinstance(doc, dict) or not isinstance(doc.get("thingName"), str):
            raise TemplateError(f"template {name!r}: 'thingName' (a string) is required")
        params = doc.get("parameters", [])
        required: List[str] = []
        defaults: Dict[str, str] = {}
        if isinstance(params, list) and all(isinstance(p, str) for p in params):
            required = list(params)
        elif isinstance(params, dict):
            for key, spec in params.items():
                if isinstance(spec, dict) and "default" in spec:
                    defaults[key] = str(spec["default"])
                else:
                    required.append(key)
        else:
            raise TemplateError(f"template {name!r}: 'parameters' must be a list or an object")
        config = doc.get("deviceConfiguration", {})
        if not isinstance(config, dict) or not all(
                isinstance(v, (str, int, float, bool)) for v in config.values()):
            raise TemplateError(f"template {name!r}: 'deviceConfiguration' must be a flat map")
        status = doc.get("certificateStatus", "ACTIVE")
        if status not in ("ACTIVE", "INACTIVE"):
            raise TemplateError(f"template {name!r}: 'certificateStatus' is ACTIVE or INACTIVE")
        deny = doc.get("deny", {})
        if not isinstance(deny, dict):
            raise TemplateError(f"template {name!r}: 'deny' must be an object")
        return cls(name, doc["thingName"], required, defaults,
                   {k: str(v) if not isinstance(v, str) else v for k, v in config.items()},
                   status, {k: [str(x) for x in v] for k, v in deny.items()})

    def resolve(self, parameters: Optional[dict]) -> Dict[str, str]:
        """The template's parameters filled in from the device's; ParameterError if not."""
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, dict) or not all(
                isinstance(v, str) for v in parameters.values()):
            raise ParameterError("Parameters must be an object of string values")
        values = dict(self.defaults)
        values.update(parameters)
        for name in self.required:
            if name not in values:
                raise ParameterError(f"Missing required parameter: {name}")
        return values

    def denied(self, values: Dict[str, str]) -> bool:
        return any(values.get(name) in refused for name, refused in self.deny.items())

    def render(self, values: Dict[str, str]):
        """(thing name, device configuration) for resolved parameter VALUES."""
        thing = substitute(self.thing_name, values)
        config = {k: substitute(v, values) for k, v in self.device_configuration.items()}
        return thing, config


def write_default(directory) -> Path:
    path = Path(directory) / TEMPLATES_FILE
    if not path.exists():
        path.write_text(json.dumps(DEFAULT_TEMPLATES, indent=2) + "\n")
    return path


def load_templates(directory) -> Dict[str, Template]:
    """Read DIR/templates.json (read on every request, so edits apply at once)."""
    path = Path(directory) / TEMPLATES_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as error:
        raise TemplateError(f"{path}: not valid JSON: {error}") from None
    templates = doc.get("templates") if isinstance(doc, dict) else None
    if not isinstance(templates, dict):
        raise TemplateError(f"{path}: expected {{\"templates\": {{NAME: {{...}}}}}}")
    return {name: Template.from_json(name, spec) for name, spec in templates.items()}
