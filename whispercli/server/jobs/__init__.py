"""The job rules: :mod:`.service` (every rule about uploads and jobs, over the storage
interfaces), :mod:`.params` (the Whisper inputs a submit may carry), :mod:`.errors` (the one
table of error codes and HTTP statuses), :mod:`.models` (installed models), :mod:`.retention`
(the periodic sweep) and :mod:`.runner` (who runs jobs for the app: the local runner, or
nobody here when queue workers do)."""
