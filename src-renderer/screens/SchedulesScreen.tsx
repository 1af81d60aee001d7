/**
 * Schedules: the contract has no schedule operations yet, so this screen says so plainly and
 * shows how to run backups meanwhile — it never pretends to save a schedule.
 */
import { Card, PageHeader } from '../components/Layout';

export function SchedulesScreen() {
  return (
    <>
      <PageHeader title="Schedules" subtitle="Automatic backups per volume or drive, with retention." />
      <Card title="Not available yet">
        <p>
          This version of the Holdfast engine cannot run backups on a schedule (hourly, daily, weekly, or when a drive is plugged in), and it does not prune by
          retention automatically. Nothing you set here would be kept, so there is nothing to set.
        </p>
        <p>Meanwhile, start backups from the Backup screen, or script them with the command line, for example from cron:</p>
        <pre className="code-block">holdfast backup start VOLUME --vault /media/backup/vault --policy range</pre>
      </Card>
    </>
  );
}
