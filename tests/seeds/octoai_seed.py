# The OctoAI seed sample (shared/seeds/octoai-async-sdk.txt), run with the real octoai-sdk 0.4.0:
# unchanged but for the URLs and token (from the environment), the audio file (argv[1]) and the
# phrase the assert expects (OCTOAI_EXPECTED: what the same server's engine made of the same
# audio, never one CPU's words), and fixed only for its two syntax slips (the empty while body,
# the missing ")"). Kept unformatted and unlinted on purpose:
# ruff: noqa
# fmt: off
import os
import sys

from octoai.client import Client
from octoai.types import Audio
import time

audio_base64 = Audio.from_file(sys.argv[1]).audio_b64  # put your file location here
inputs = {"language": "en", "task": "transcribe", "audio": audio_base64}
OCTOAI_API_TOKEN = os.environ["OCTOAI_TOKEN"]
# The client will also identify if OCTOAI_TOKEN is set as an environment variable
client = Client(token=OCTOAI_API_TOKEN)

whisper_url = os.environ["OCTOAI_BASE_URL"] + "/predict"
whisper_health_check = os.environ["OCTOAI_BASE_URL"] + "/healthcheck"

# First, you can verify the endpoint is healthy.
if client.health_check(whisper_health_check) == 200:
  future = client.infer_async(whisper_url, inputs)

# Typically, you'd collect additional futures then poll for status,
# but for the sake of example...
while not client.is_future_ready(future):
  time.sleep(1)

# Once the results are ready, you can use them in the same way as you
# typically do for demo endpoints
result = client.get_future_result(future)

assert (
  os.environ["OCTOAI_EXPECTED"]
  in result["response"]["segments"][0]["text"]
)
