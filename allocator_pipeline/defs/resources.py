"""Resources: the pipeline settings."""


import json

import dagster as dg

from allocator_pipeline.settings import Settings, load_settings


class AllocatorSettings(dg.ConfigurableResource):
    """The pipeline's settings (allocator_pipeline.settings.Settings), loaded and validated.

    Every field is optional; unset fields fall back to the environment (ALLOCATOR_HOME,
    ALLOCATOR_PRICES, ALLOCATOR_STEP3, ALLOCATOR_PROFILE), then to ``allocator.toml`` in the home
    directory, then to the profile and field defaults.
    """

    home: str | None = None
    prices: str | None = None
    step3: str | None = None
    profile: str | None = None
    config_file: str | None = None
    overrides_json: str | None = None

    def load(self) -> Settings:
        """Validated settings; ``overrides_json`` (a JSON object of nested sections) wins over all."""
        return load_settings(
            home=self.home,
            prices=self.prices,
            step3=self.step3,
            profile=self.profile,
            config_file=self.config_file,
            overrides=json.loads(self.overrides_json) if self.overrides_json else None,
        )
