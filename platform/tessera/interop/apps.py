from django.apps import AppConfig


class InteropConfig(AppConfig):
    """Results out to a hospital's systems: DICOM to its PACS, FHIR to its EHR. No models of its
    own: the log is jobs.ResultDelivery."""

    name = "tessera.interop"
    label = "interop"
    verbose_name = "Hospital systems"
