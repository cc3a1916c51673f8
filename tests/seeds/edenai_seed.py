# The Eden AI seed sample (shared/seeds/edenai-async-jobs.txt): its two code blocks, fixed only
# for the two syntax slips (the comma after "en", the unterminated webhook string), with the
# base URL, key, provider, webhook receiver and job id (of the launch) changed. The lines after
# "test harness" are not in the seed: they poll until the job ends and print the transcript.
# Kept unformatted and unlinted on purpose:
# ruff: noqa
# fmt: off
import os
EDEN_BASE = os.environ["EDENAI_BASE_URL"]
API_KEY = os.environ["EDENAI_API_KEY"]
WEBHOOK = os.environ["EDENAI_WEBHOOK"]

import requests


url = f"{EDEN_BASE}/audio/speech_to_text_async"

files = {"file": ("audio.wav", open("audio.wav", "rb"), "audio/x-wav")}
payload = {
    "providers": "whisper",
    "language": "en",
    "speakers": "2",
    "profanity_filter": "false",
    "webhook_receiver": WEBHOOK
}
headers = {
    "accept": "application/json",
    "authorization": f"Bearer {API_KEY}"
}

response = requests.post(url, data=payload, files=files, headers=headers)
data = response.json()

print(data)  # {"public_id": "9421ae03-6180-4aef-82ce-19b2c33e9397"}

import requests

# url including the job id
url = f"{EDEN_BASE}/audio/speech_to_text_async/{data['public_id']}"

headers = {
    "accept": "application/json",
    "authorization": f"Bearer {API_KEY}"
}

response = requests.get(url, headers=headers)
data = response.json()
print(data['status'])  # processing | finished | failed

# -- test harness (not in the seed) --
import time
while data["status"] == "processing":
    time.sleep(0.5)
    data = requests.get(url, headers=headers).json()
print(data["status"])
print("-- transcript --")
print(data["results"]["whisper"]["text"])
