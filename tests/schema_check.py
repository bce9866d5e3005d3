"""Validate the bundled templates with Python's jsonschema (Draft 7), independently of closeloop.

PyYAML reads YAML 1.1; timestamps are switched off so that dates stay text, as YAML 1.2 and
closeloop read them. Needs: python3 -m pip install -r tests/requirements.txt
"""
import glob
import json
import os
import sys

try:
    import jsonschema
    import yaml
except ImportError as e:  # pragma: no cover - the message is the point
    sys.exit(f"missing Python module ({e}); run: python3 -m pip install -r tests/requirements.txt")


class Yaml12ish(yaml.SafeLoader):
    """SafeLoader without the YAML 1.1 timestamp resolver."""


Yaml12ish.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with open("schemas/app.schema.json", encoding="utf-8") as f:
    schema = json.load(f)
jsonschema.Draft7Validator.check_schema(schema)
validator = jsonschema.Draft7Validator(schema)

failed = False
for path in sorted(glob.glob("app-templates/*/app.yaml")):
    with open(path, encoding="utf-8") as f:
        doc = yaml.load(f, Loader=Yaml12ish)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        failed = True
        for e in errors:
            print(f"invalid: {path}: /{'/'.join(map(str, e.absolute_path))}: {e.message}")
    else:
        print(f"valid: {path}")

# The same validator must reject what closeloop rejects at the schema level.
broken = {"app": {"id": "x", "title": "x"}, "forms": [{"id": "lead", "fields": [{"id": "a", "type": "text", "requried": True}]}]}
if validator.is_valid(broken):
    failed = True
    print("error: a misspelt key was accepted")
else:
    print("broken app rejected as expected")

sys.exit(1 if failed else 0)
