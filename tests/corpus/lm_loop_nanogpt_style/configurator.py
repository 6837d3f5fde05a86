# nanoGPT-style configuration: train.py runs this file with exec() in its own globals.
#   python train.py config/some_config.py --batch_size=32 --compile=False
# A bare argument is a config file (run as Python), a --key=value argument overrides one of
# train.py's globals; values are read as Python literals where they parse as one.
import sys
from ast import literal_eval

for arg in sys.argv[1:]:
    if "=" not in arg:
        assert not arg.startswith("--"), f"expected a config file or --key=value, got {arg}"
        config_file = arg
        print(f"Overriding config with {config_file}:")
        with open(config_file) as f:
            print(f.read())
        exec(open(config_file).read())
    else:
        assert arg.startswith("--"), f"expected --key=value, got {arg}"
        key, val = arg.split("=", 1)
        key = key[2:]
        if key not in globals():
            raise ValueError(f"Unknown config key: {key}")
        try:
            attempt = literal_eval(val)
        except (SyntaxError, ValueError):
            attempt = val
        assert type(attempt) == type(globals()[key]), f"{key}: {type(attempt)} is not {type(globals()[key])}"
        print(f"Overriding: {key} = {attempt}")
        globals()[key] = attempt
