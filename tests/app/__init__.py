"""The app as a whole: factory, settings, health, scheduler, devmail, docs, migrations, main job."""
