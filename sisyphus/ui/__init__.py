"""Views of the event stream: the rich dashboard and the `--plain` line log.

Deliberately empty of imports: stages that emit `sisyphus.ui.events` must not pull in rich.
"""
