"""Forms of the integration settings. Input validation only; saving is the services' job."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import URLValidator

from integrations.services.linarc import KEY_FOR_ANOTHER_URL, linarc_stored_key_usable
from integrations.services.rules import (
    MAX_PULL_MINUTES,
    MIN_PULL_MINUTES,
    display_name_template_problem,
)


class HttpUrlField(forms.URLField):
    """A URL Linarc can be reached at: http or https only (no ftp://, no file://)."""

    default_error_messages = {"invalid": "Enter an http:// or https:// URL."}
    default_validators = [URLValidator(schemes=["http", "https"])]


class LinarcConnectionForm(forms.Form):
    """The Linarc connection fields (also posted alone by *Test connection*).

    A blank API key means "keep the stored one", for the stored base URL only: with another
    base URL the key must be typed again, so the stored key never goes to a host it was not
    saved for.
    """

    base_url = HttpUrlField(
        label="Linarc base URL",
        max_length=300,
        assume_scheme="https",
        widget=forms.URLInput(
            attrs={"placeholder": "https://api.linarc.com", "spellcheck": "false"}
        ),
    )
    # Never rendered back: the stored key stays in the database, encrypted.
    api_key = forms.CharField(
        label="API key",
        required=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    def __init__(
        self,
        *args: Any,
        has_stored_key: bool = False,
        stored_base_url: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.has_stored_key = has_stored_key
        self.stored_base_url = stored_base_url
        placeholder = "Stored — leave blank to keep it" if has_stored_key else "Paste the API key"
        self.fields["api_key"].widget.attrs["placeholder"] = placeholder

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        base_url = cleaned.get("base_url")
        if (
            base_url
            and not cleaned.get("api_key")
            and self.has_stored_key
            and not linarc_stored_key_usable(
                stored_base_url=self.stored_base_url, base_url=base_url
            )
        ):
            self.add_error("api_key", KEY_FOR_ANOTHER_URL)
        return cleaned


class SyncRulesForm(LinarcConnectionForm):
    auto_create = forms.BooleanField(label="Auto-Create", required=False)
    auto_update = forms.BooleanField(label="Auto-Update", required=False)
    pull_every_minutes = forms.IntegerField(
        label="Pull every",
        min_value=MIN_PULL_MINUTES,
        max_value=MAX_PULL_MINUTES,
        error_messages={
            "min_value": f"Pull every must be between {MIN_PULL_MINUTES} and "
            f"{MAX_PULL_MINUTES} minutes.",
            "max_value": f"Pull every must be between {MIN_PULL_MINUTES} and "
            f"{MAX_PULL_MINUTES} minutes.",
        },
    )
    display_name_template = forms.CharField(
        label="QBO display name",
        max_length=200,
        strip=False,
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
    )

    def clean_display_name_template(self) -> str:
        template: str = self.cleaned_data["display_name_template"]
        problem = display_name_template_problem(template)
        if problem:
            raise forms.ValidationError(problem)
        return template.strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("api_key") and not self.has_stored_key:
            self.add_error("api_key", "Enter the Linarc API key.")
        return cleaned
