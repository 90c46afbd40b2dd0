import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/**
 * The vault's Prometheus metrics (prom-client). One registry per vault instance, never the
 * library's global one, so two vaults in one process (tests) count apart. Labels are closed sets
 * chosen by the code (provider, outcome, reason codes); no label ever carries a value from a
 * request, an id or card data (PCI DSS 3.3, 10.2: metrics are not a side channel for either).
 */
export class VaultMetrics {
  readonly registry = new Registry();

  /** Webhook intake: `outcome` is queued, duplicate, or the rejection's error code. */
  readonly webhookIntake = new Counter({
    name: "payvault_webhook_intake_total",
    help: "Webhooks received at intake, by provider and outcome",
    labelNames: ["provider", "outcome"] as const,
    registers: [this.registry],
  });

  /** Processing attempts of received events: done, retry or dead (the dead-letter queue). */
  readonly webhookProcessing = new Counter({
    name: "payvault_webhook_processing_total",
    help: "Processing attempts of received webhook events, by outcome",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  /** Deliveries of the vault's events to merchants' endpoints: done, retry or dead. */
  readonly eventDeliveries = new Counter({
    name: "payvault_event_deliveries_total",
    help: "Delivery attempts of events to merchant endpoints, by outcome",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  /** Forward-proxy requests: `outcome` is the processor's status class (2xx…5xx) or an error code. */
  readonly forwardRequests = new Counter({
    name: "payvault_forward_requests_total",
    help: "Forward-proxy requests, by outcome",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  readonly forwardDuration = new Histogram({
    name: "payvault_forward_duration_seconds",
    help: "Time from receiving a forward request to answering it",
    labelNames: ["outcome"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  /**
   * Rows of the webhook queues by state, read at scrape time: `dead` is the dead-letter queue an
   * operator should alert on (PCI DSS 10.7.2: failures of critical controls are detected).
   */
  readonly queueRows = new Gauge({
    name: "payvault_webhook_queue_rows",
    help: "Rows of the webhook queues (intake events, merchant deliveries) by state",
    labelNames: ["queue", "state"] as const,
    registers: [this.registry],
  });

  private queueReader: (() => Promise<Record<string, Record<string, number>>>) | undefined;

  /** Sets how the queue gauge is read (the composition root passes a database query). */
  readQueuesWith(reader: () => Promise<Record<string, Record<string, number>>>): void {
    this.queueReader = reader;
  }

  constructor(options: { readonly processMetrics?: boolean } = {}) {
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry });
  }

  /** The exposition text (Prometheus format) and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    if (this.queueReader !== undefined) {
      const queues = await this.queueReader().catch(() => undefined);
      for (const [queue, states] of Object.entries(queues ?? {})) {
        for (const [state, rows] of Object.entries(states))
          this.queueRows.set({ queue, state }, rows);
      }
    }
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** One counter's value for a label set (tests and the CLI). */
  async valueOf(
    metric: "webhookIntake" | "webhookProcessing" | "eventDeliveries" | "forwardRequests",
    labels: Readonly<Record<string, string>>,
  ): Promise<number> {
    const { values } = await this[metric].get();
    const match = values.find((v) =>
      Object.entries(labels).every(([k, want]) => String(v.labels[k as never]) === want),
    );
    return match?.value ?? 0;
  }
}
